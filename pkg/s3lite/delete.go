package s3lite

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

const s3Namespace = "http://s3.amazonaws.com/doc/2006-03-01/"

type deleteResult struct {
	Deleted []struct {
		Key                   *string `xml:"Key"`
		VersionId             *string `xml:"VersionId"`
		DeleteMarker          *bool   `xml:"DeleteMarker"`
		DeleteMarkerVersionId *string `xml:"DeleteMarkerVersionId"`
	} `xml:"Deleted"`
	Errors []struct {
		Key       *string `xml:"Key"`
		VersionId *string `xml:"VersionId"`
		Code      *string `xml:"Code"`
		Message   *string `xml:"Message"`
	} `xml:"Error"`
}

// DeleteObjects deletes up to 1000 keys of in.Bucket in one request.
//
// It sends Bucket, Delete.Objects (Key and VersionId), Delete.Quiet and
// ExpectedBucketOwner; other fields are ignored. The request carries
// Content-MD5 and a SHA-256 checksum of its XML, as S3 requires one.
// Keys must be valid UTF-8 made of characters XML 1.0 can carry.
//
// Keys S3 could not delete are reported in the output's Errors, not as an
// error; with Quiet, Deleted is empty.
func (c *Client) DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, _ ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	const op = "DeleteObjects"
	if in == nil || in.Delete == nil {
		return nil, opError(op, errors.New("missing required field Delete"))
	}
	body, err := deleteBody(in.Delete)
	if err != nil {
		return nil, opError(op, err)
	}
	md5Sum := md5.Sum(body)
	shaSum := sha256.Sum256(body)
	r := &request{
		op: op, method: http.MethodPost, bucket: aws.ToString(in.Bucket),
		query:  url.Values{"delete": {""}},
		header: http.Header{},
		body:   bytes.NewReader(body), length: int64(len(body)),
		payloadHash: hex.EncodeToString(shaSum[:]),
		readAll:     true,
	}
	r.header.Set("Content-Type", "application/xml")
	r.header.Set("Content-Md5", base64.StdEncoding.EncodeToString(md5Sum[:]))
	r.header.Set("X-Amz-Checksum-Sha256", base64.StdEncoding.EncodeToString(shaSum[:]))
	r.header.Set("X-Amz-Sdk-Checksum-Algorithm", string(types.ChecksumAlgorithmSha256))
	setHeader(r.header, "X-Amz-Expected-Bucket-Owner", in.ExpectedBucketOwner)

	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	var res deleteResult
	if err := xml.Unmarshal(resp.data, &res); err != nil {
		return nil, opError(op, fmt.Errorf("decode response: %w", err))
	}
	out := &s3.DeleteObjectsOutput{}
	for _, d := range res.Deleted {
		out.Deleted = append(out.Deleted, types.DeletedObject{
			Key: d.Key, VersionId: d.VersionId, DeleteMarker: d.DeleteMarker, DeleteMarkerVersionId: d.DeleteMarkerVersionId,
		})
	}
	for _, e := range res.Errors {
		out.Errors = append(out.Errors, types.Error{Key: e.Key, VersionId: e.VersionId, Code: e.Code, Message: e.Message})
	}
	return out, nil
}

// deleteBody renders the <Delete> document. A key XML cannot carry would
// otherwise be replaced by U+FFFD and another key deleted.
func deleteBody(d *types.Delete) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="` + s3Namespace + `">`)
	for i, o := range d.Objects {
		key := aws.ToString(o.Key)
		if key == "" {
			return nil, fmt.Errorf("object %d: missing Key", i)
		}
		if !xmlSafe(key) {
			return nil, fmt.Errorf("object %d: key holds characters XML cannot carry", i)
		}
		b.WriteString("<Object><Key>")
		xml.EscapeText(&b, []byte(key))
		b.WriteString("</Key>")
		if v := aws.ToString(o.VersionId); v != "" {
			b.WriteString("<VersionId>")
			xml.EscapeText(&b, []byte(v))
			b.WriteString("</VersionId>")
		}
		b.WriteString("</Object>")
	}
	if aws.ToBool(d.Quiet) {
		b.WriteString("<Quiet>true</Quiet>")
	}
	b.WriteString("</Delete>")
	return b.Bytes(), nil
}

// xmlSafe reports whether s is valid UTF-8 of XML 1.0 characters.
func xmlSafe(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r == 0x09 || r == 0x0A || r == 0x0D:
		case r >= 0x20 && r <= 0xD7FF:
		case r >= 0xE000 && r <= 0xFFFD:
		case r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return true
}
