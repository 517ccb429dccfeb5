"""Print template.yaml as the CloudFormation JSON that AWS SAM deploys.

usage: python3 transform.py TEMPLATE CODE_URI

Every AWS::Serverless::Function gets CODE_URI (an s3:// location) as its
CodeUri, standing in for the artifact `sam build` would upload. The region
comes from AWS_DEFAULT_REGION.

Exit status 3 means aws-sam-translator is not installed, so the caller can
tell a missing tool from a template SAM rejects (status 1).
"""

import json
import sys

try:
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse
except ImportError as err:
    print(f"aws-sam-translator is not installed: {err}", file=sys.stderr)
    sys.exit(3)


class NoManagedPolicies:
    """Managed-policy loader for the translator.

    The template names no AWS managed policy by name (SAM adds the ones it
    needs by ARN), so there is nothing to look up in IAM.
    """

    def load(self):
        return {}


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    template_path, code_uri = sys.argv[1], sys.argv[2]
    with open(template_path, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = code_uri
    try:
        output = transform(template, {}, NoManagedPolicies())
    except InvalidDocumentException as err:
        for cause in err.causes:
            print(cause.message, file=sys.stderr)
        return 1
    json.dump(output, sys.stdout, separators=(",", ":"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
