"""Makes the AWS emulator's DynamoDB calls cost what DynamoDB's do: in
proportion to the items they touch, not to the whole table.

The load test puts this directory on PYTHONPATH for the emulator it starts
(moto, through internal/awstest), so Python imports this module at start-up. In
moto 5, two calls the backend makes on every request take time in
proportion to the table's size, so a burst against one table slows down
with every item it adds and ends up measuring little but the emulator:

- TransactWriteItems is made all-or-nothing by deep-copying every table a
  transaction writes to, once per item of the transaction, and putting the
  copies back when it fails. Here only the items the transaction names (the
  only ones it can change) are saved and put back, with the stream's length:
  the outcome is the same.
- Query on a table's own key sorts every item of the table, then keeps those
  of the partition asked for. Here it is given that partition only, sorted
  the same way: the answer, pages included, is the same.

It changes nothing when moto is not importable (another interpreter).
"""

import copy
import inspect
import threading


def _patch():
    try:
        from moto.dynamodb import models
        from moto.dynamodb.models.table import Table
    except Exception:  # not the interpreter that runs the emulator
        return

    original = models.DynamoDBBackend.transact_write_items

    class _Copier:
        """The copy module, except that tables are not copied while a
        transaction runs: the items it names are saved instead."""

        in_transaction = False

        def __getattr__(self, name):
            return getattr(copy, name)

        def deepcopy(self, x, memo=None):
            if self.in_transaction and isinstance(x, Table):
                return x
            return copy.deepcopy(x, memo)

    copier = _Copier()
    models.copy = copier

    def saved_items(backend, transact_items):
        """The items the transaction names, as they are, and the length of
        each table's stream."""
        saved, seen, streams = [], set(), {}
        for entry in transact_items:
            for op_type, op in entry.items():
                if not isinstance(op, dict):
                    continue
                table = backend.tables.get(op.get("TableName"))
                if table is None:
                    continue
                try:
                    if op_type == "Put":
                        attrs = op["Item"]
                        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                        if table.range_key_attr is not None:
                            key[table.range_key_attr] = attrs[table.range_key_attr]
                    else:
                        key = op["Key"]
                    hash_value, range_value = backend.get_keys_value(table, key)
                except Exception:
                    # moto rejects this item without writing it.
                    continue
                if table.range_key_attr is not None and range_value is None:
                    continue
                if table.stream_shard is not None:
                    streams.setdefault(id(table), (table.stream_shard, len(table.stream_shard.items)))
                ident = (id(table), hash_value, range_value)
                if ident in seen:
                    continue
                seen.add(ident)
                current = table.get_item(hash_value, range_value)
                saved.append((table, hash_value, range_value, copy.deepcopy(current)))
        return saved, list(streams.values())

    def restore(saved, streams):
        for shard, length in streams:
            del shard.items[length:]
        for table, hash_value, range_value, item in reversed(saved):
            if range_value is not None:
                if item is None:
                    table.items.get(hash_value, {}).pop(range_value, None)
                else:
                    table.items[hash_value][range_value] = item
            elif item is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = item

    def transact_write_items(self, transact_items):
        saved, streams = saved_items(self, transact_items)
        copier.in_transaction = True
        try:
            return original(self, transact_items)
        except BaseException:
            restore(saved, streams)
            raise
        finally:
            copier.in_transaction = False

    models.DynamoDBBackend.transact_write_items = transact_write_items

    # Query: the partition of a base-table query, for the thread running it.
    local = threading.local()
    original_all_items = Table.all_items
    original_query = Table.query
    query_signature = inspect.signature(original_query)

    def sort_key(item):
        # Table.all_items's order.
        return (item.hash_key, item.range_key) if item.range_key else item.hash_key

    def all_items(self):
        partition = getattr(local, "partition", None)
        if partition is not None and partition[0] is self:
            return partition[1]
        return original_all_items(self)

    def query(self, *args, **kwargs):
        try:
            bound = query_signature.bind(self, *args, **kwargs)
            hash_key = bound.arguments.get("hash_key")
            index_name = bound.arguments.get("index_name")
        except TypeError:
            return original_query(self, *args, **kwargs)
        if index_name or hash_key is None:
            return original_query(self, *args, **kwargs)
        if self.range_key_attr:
            items = list(self.items.get(hash_key, {}).values())
        else:
            item = self.items.get(hash_key)
            items = [item] if item is not None else []
        local.partition = (self, sorted(items, key=sort_key))
        try:
            return original_query(self, *args, **kwargs)
        finally:
            local.partition = None

    Table.all_items = all_items
    Table.query = query


_patch()
