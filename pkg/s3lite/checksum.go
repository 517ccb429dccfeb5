package s3lite

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"hash/crc32"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// checkedBody wraps out.Body so that reading it to the end checks the bytes
// against the strongest full-object checksum in out. Without a usable
// checksum the body is returned as is. Checksums of multipart objects
// ("...-N") cover parts, not the bytes, and are not checked.
func checkedBody(out *s3.GetObjectOutput) io.ReadCloser {
	for _, c := range []struct {
		value *string
		newFn func() hash.Hash
	}{
		{out.ChecksumSHA256, sha256.New},
		{out.ChecksumCRC32C, func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) }},
		{out.ChecksumCRC32, func() hash.Hash { return crc32.NewIEEE() }},
	} {
		v := aws.ToString(c.value)
		if v == "" || strings.Contains(v, "-") {
			continue
		}
		want, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			continue
		}
		return &checksumReader{body: out.Body, hash: c.newFn(), want: want}
	}
	return out.Body
}

// checksumReader hashes what it reads and fails at the end on a mismatch.
type checksumReader struct {
	body io.ReadCloser
	hash hash.Hash
	want []byte
}

func (r *checksumReader) Read(p []byte) (int, error) {
	n, err := r.body.Read(p)
	r.hash.Write(p[:n])
	if err == io.EOF && !bytes.Equal(r.hash.Sum(nil), r.want) {
		return n, ErrChecksumMismatch
	}
	return n, err
}

func (r *checksumReader) Close() error { return r.body.Close() }
