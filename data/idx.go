package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// IDX is an unsigned-byte array in the IDX format of the MNIST family
// (http://yann.lecun.com/exdb/mnist/): images N×H×W or labels N.
type IDX struct {
	Dims []int
	Data []uint8
}

// ReadIDX reads an IDX file, gzip-compressed or plain (detected from the content).
func ReadIDX(path string) (*IDX, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return DecodeIDX(path, b)
}

// DecodeIDX parses IDX content held in b (gzip or plain); name is used in errors.
func DecodeIDX(name string, b []byte) (*IDX, error) {
	var r io.Reader = bytes.NewReader(b)
	gzipped := len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b
	if gzipped {
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: gzip: %v", name, err)
		}
		r = z
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("%s: magic: file too short (%v)", name, err)
	}
	if hdr[0] != 0 || hdr[1] != 0 {
		return nil, fmt.Errorf("%s: magic: bytes % x are not IDX (want 00 00 08 <ndims>)", name, hdr)
	}
	if hdr[2] != 0x08 {
		return nil, fmt.Errorf("%s: magic: element type 0x%02x not supported (want 0x08, unsigned byte)", name, hdr[2])
	}
	nd := int(hdr[3])
	if nd < 1 || nd > 4 {
		return nil, fmt.Errorf("%s: magic: %d dimensions (want 1 to 4)", name, nd)
	}
	dims := make([]int, nd)
	n := 1
	for i := range dims {
		var d [4]byte
		if _, err := io.ReadFull(r, d[:]); err != nil {
			return nil, fmt.Errorf("%s: dimension %d: file truncated", name, i)
		}
		v := binary.BigEndian.Uint32(d[:])
		if v > 1<<28 || uint64(n)*uint64(v) > 1<<31 {
			return nil, fmt.Errorf("%s: dimension %d: %d is too large", name, i, v)
		}
		dims[i] = int(v)
		n *= int(v)
	}
	// Allocate only what the input can hold: the data itself for a plain file, at
	// most DEFLATE's 1032:1 expansion for gzip. A lying header fails here, cheaply.
	limit := len(b)
	if gzipped {
		limit = 1032 * len(b)
	}
	if n > limit {
		return nil, fmt.Errorf("%s: data: dims %v need %d bytes, more than the file can hold (truncated or wrong header)", name, dims, n)
	}
	data := make([]byte, n)
	if got, err := io.ReadFull(r, data); err != nil {
		return nil, fmt.Errorf("%s: data: dims %v need %d bytes, file has %d (truncated: %v)", name, dims, n, got, err)
	}
	var one [1]byte
	if k, err := io.ReadFull(r, one[:]); k != 0 {
		return nil, fmt.Errorf("%s: data: bytes after the %d that dims %v declare (wrong header)", name, n, dims)
	} else if err != io.EOF {
		return nil, fmt.Errorf("%s: gzip: %v (file corrupt)", name, err)
	}
	return &IDX{Dims: dims, Data: data}, nil
}
