package s3lite

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

type listResult struct {
	Name                  *string `xml:"Name"`
	Prefix                *string `xml:"Prefix"`
	Delimiter             *string `xml:"Delimiter"`
	StartAfter            *string `xml:"StartAfter"`
	EncodingType          string  `xml:"EncodingType"`
	KeyCount              *int32  `xml:"KeyCount"`
	MaxKeys               *int32  `xml:"MaxKeys"`
	IsTruncated           *bool   `xml:"IsTruncated"`
	ContinuationToken     *string `xml:"ContinuationToken"`
	NextContinuationToken *string `xml:"NextContinuationToken"`
	Contents              []struct {
		Key          *string `xml:"Key"`
		LastModified *string `xml:"LastModified"`
		ETag         *string `xml:"ETag"`
		Size         *int64  `xml:"Size"`
		StorageClass string  `xml:"StorageClass"`
	} `xml:"Contents"`
	CommonPrefixes []struct {
		Prefix *string `xml:"Prefix"`
	} `xml:"CommonPrefixes"`
}

// ListObjectsV2 lists one page of keys in in.Bucket. It works with
// s3.NewListObjectsV2Paginator.
//
// It sends Bucket, Prefix, Delimiter, StartAfter, ContinuationToken,
// MaxKeys, EncodingType and ExpectedBucketOwner; other fields are ignored.
// Keys come back as S3 sends them: with EncodingType "url" they stay
// URL-encoded, as with the SDK. Without it, a carriage return in a key
// reads back as a line feed, because XML normalises line ends.
//
// The output holds Contents (Key, Size, ETag, LastModified, StorageClass),
// CommonPrefixes, IsTruncated, NextContinuationToken, KeyCount, MaxKeys,
// Name, Prefix, Delimiter, StartAfter, ContinuationToken and EncodingType.
func (c *Client) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	const op = "ListObjectsV2"
	if in == nil {
		in = &s3.ListObjectsV2Input{}
	}
	q := url.Values{"list-type": {"2"}}
	for name, v := range map[string]*string{
		"prefix":             in.Prefix,
		"delimiter":          in.Delimiter,
		"start-after":        in.StartAfter,
		"continuation-token": in.ContinuationToken,
		"encoding-type":      nilIfEmpty(string(in.EncodingType)),
	} {
		if v != nil {
			q.Set(name, *v)
		}
	}
	if in.MaxKeys != nil {
		q.Set("max-keys", strconv.FormatInt(int64(*in.MaxKeys), 10))
	}
	r := &request{op: op, method: http.MethodGet, bucket: aws.ToString(in.Bucket), query: q, header: http.Header{}, readAll: true}
	setHeader(r.header, "X-Amz-Expected-Bucket-Owner", in.ExpectedBucketOwner)

	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	var res listResult
	if err := xml.Unmarshal(resp.data, &res); err != nil {
		return nil, opError(op, fmt.Errorf("decode response: %w", err))
	}
	out := &s3.ListObjectsV2Output{
		Name:                  res.Name,
		Prefix:                res.Prefix,
		Delimiter:             res.Delimiter,
		StartAfter:            res.StartAfter,
		EncodingType:          types.EncodingType(res.EncodingType),
		KeyCount:              res.KeyCount,
		MaxKeys:               res.MaxKeys,
		IsTruncated:           res.IsTruncated,
		ContinuationToken:     res.ContinuationToken,
		NextContinuationToken: res.NextContinuationToken,
	}
	if len(res.Contents) > 0 {
		out.Contents = make([]types.Object, len(res.Contents))
		for i, o := range res.Contents {
			out.Contents[i] = types.Object{
				Key:          o.Key,
				Size:         o.Size,
				ETag:         o.ETag,
				LastModified: parseTime(o.LastModified),
				StorageClass: types.ObjectStorageClass(o.StorageClass),
			}
		}
	}
	for _, p := range res.CommonPrefixes {
		out.CommonPrefixes = append(out.CommonPrefixes, types.CommonPrefix{Prefix: p.Prefix})
	}
	return out, nil
}
