package ckpt

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sort"

	"github.com/klauspost/compress/zstd"
)

// FormatVersion is the version of the rank file layout written by Save.
// Read refuses any other version rather than guess at its meaning.
const FormatVersion = 1

// magic opens every rank file; the NUL keeps it from being mistaken for text.
const magic = "MCTCKPT\x00"

// Layout of a rank file (all integers little-endian):
//
//	magic          8 bytes  "MCTCKPT\x00"
//	version        uint32   FormatVersion
//	header length  uint32   n
//	header         n bytes  JSON: Header fields and the section table
//	body           zstd frame of the sections' bytes, concatenated in table order
//	body length    uint64   length of the zstd frame
//	checksum       uint32   CRC-32C of every byte before it
//
// The header is not compressed so that Commit can check a file by reading
// its first and last bytes only. The body length in the trailer lets Read
// tell a truncated file from a corrupt one before it checks the sum.
const (
	preambleLen = len(magic) + 4 + 4
	trailerLen  = 8 + 4
	// maxHeaderLen bounds what a damaged length field can make Read allocate
	// before the checksum has been verified; real headers are a few KiB.
	maxHeaderLen = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header describes one rank file. Save fills in Format; the other fields are
// the caller's and come back unchanged from Read, Latest and their kin.
type Header struct {
	Format  int    `json:"format"`
	RunID   string `json:"run_id"` // hash of the run's configuration; resuming requires equality
	View    int    `json:"view"`
	Replica int    `json:"replica"`
	Rank    int    `json:"rank"`
	World   int    `json:"world"`
	Step    int64  `json:"step"`
	Epoch   int    `json:"epoch"`
	// Shapes optionally records tensor shapes by section name, for tools and
	// for error messages that can say which tensor does not fit.
	Shapes map[string][]int `json:"shapes,omitempty"`
}

// section is an entry of the section table stored in the file header.
type section struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// Planes is 4 when the section was stored as byte planes (see
	// toPlanes), 0 when stored as is.
	Planes int `json:"planes,omitempty"`
}

// Byte planes. zstd finds almost nothing to compress in float32 arrays as
// they are (BenchmarkSave: compressed size 1.000 of the state), because the
// predictable sign and exponent bytes are interleaved with noisy mantissa
// bytes. Regrouped so that byte k of every 4-byte word sits together, the
// same sections compress to 0.87. Every section of planeMinLen bytes or
// more is stored this way: its length need not be a multiple of 4 (the last
// 0-3 bytes are stored as they are), nor its floats aligned to the section
// start (a serialised state often opens with a variable-length header; the
// planes are then merely rotated). The transform runs in blocks of
// planeBlock bytes so it needs only a small scratch buffer.
const (
	planeWord   = 4
	planeBlock  = 1 << 18
	planeMinLen = 256 // below this the regrouping cannot pay for itself
)

func usePlanes(n int) bool { return n >= planeMinLen }

// planePart is the length of the prefix of an n-byte section that is
// regrouped into planes: whole words only.
func planePart(n int) int { return n - n%planeWord }

// toPlanes regroups src (a multiple of 4 bytes) into dst: first byte 0 of
// every word, then byte 1, and so on.
func toPlanes(dst, src []byte) {
	m := len(src) / planeWord
	for i := range m {
		w := src[planeWord*i : planeWord*i+planeWord]
		dst[i], dst[m+i], dst[2*m+i], dst[3*m+i] = w[0], w[1], w[2], w[3]
	}
}

// fromPlanes undoes toPlanes.
func fromPlanes(dst, src []byte) {
	m := len(src) / planeWord
	for i := range m {
		w := dst[planeWord*i : planeWord*i+planeWord]
		w[0], w[1], w[2], w[3] = src[i], src[m+i], src[2*m+i], src[3*m+i]
	}
}

// fileHeader is the JSON header as stored: the caller's Header plus the table
// that says how to cut the decompressed body into sections.
type fileHeader struct {
	Header
	Sections []section `json:"sections"`
}

func (h *Header) validate() error {
	switch {
	case h.RunID == "":
		return errors.New("header field RunID is empty: set it to a hash of the run's configuration")
	case h.World < 1:
		return fmt.Errorf("header field World is %d: it must be at least 1", h.World)
	case h.Rank < 0 || h.Rank >= h.World:
		return fmt.Errorf("header field Rank is %d: it must be in [0, World=%d)", h.Rank, h.World)
	case h.View < 0:
		return fmt.Errorf("header field View is %d: it must not be negative", h.View)
	case h.Replica < 0:
		return fmt.Errorf("header field Replica is %d: it must not be negative", h.Replica)
	case h.Step < 0:
		return fmt.Errorf("header field Step is %d: it must not be negative", h.Step)
	case h.Epoch < 0:
		return fmt.Errorf("header field Epoch is %d: it must not be negative", h.Epoch)
	}
	return nil
}

// encode writes a complete rank file for h and sections to w. Sections are
// stored in name order so equal state gives byte-identical files.
func encode(w io.Writer, h Header, sections map[string][]byte) error {
	names := make([]string, 0, len(sections))
	for name := range sections {
		if name == "" {
			return errors.New("a section has an empty name")
		}
		names = append(names, name)
	}
	sort.Strings(names)
	fh := fileHeader{Header: h, Sections: make([]section, len(names))}
	for i, name := range names {
		fh.Sections[i] = section{Name: name, Size: int64(len(sections[name]))}
		if usePlanes(len(sections[name])) {
			fh.Sections[i].Planes = planeWord
		}
	}
	hdr, err := json.Marshal(fh)
	if err != nil {
		return fmt.Errorf("encode header: %w", err)
	}

	sum := crc32.New(castagnoli)
	out := io.MultiWriter(w, sum)
	pre := make([]byte, 0, preambleLen)
	pre = append(pre, magic...)
	pre = binary.LittleEndian.AppendUint32(pre, FormatVersion)
	pre = binary.LittleEndian.AppendUint32(pre, uint32(len(hdr)))
	if _, err := out.Write(pre); err != nil {
		return err
	}
	if _, err := out.Write(hdr); err != nil {
		return err
	}
	body := &countingWriter{w: out}
	// One encoder goroutine: ranks usually share a node, and checkpoint
	// time is small next to training time.
	zw, err := zstd.NewWriter(body, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	var scratch []byte
	for i, name := range names {
		data := sections[name]
		if fh.Sections[i].Planes == 0 {
			if _, err := zw.Write(data); err != nil {
				zw.Close()
				return fmt.Errorf("compress section %q: %w", name, err)
			}
			continue
		}
		if scratch == nil {
			scratch = make([]byte, planeBlock)
		}
		words := planePart(len(data))
		for off := 0; off < words; off += planeBlock {
			block := data[off:min(off+planeBlock, words)]
			toPlanes(scratch, block)
			if _, err := zw.Write(scratch[:len(block)]); err != nil {
				zw.Close()
				return fmt.Errorf("compress section %q: %w", name, err)
			}
		}
		if _, err := zw.Write(data[words:]); err != nil {
			zw.Close()
			return fmt.Errorf("compress section %q: %w", name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	if _, err := out.Write(binary.LittleEndian.AppendUint64(nil, uint64(body.n))); err != nil {
		return err
	}
	_, err = w.Write(binary.LittleEndian.AppendUint32(nil, sum.Sum32()))
	return err
}

// peekHeader checks what can be checked of a rank file without its body:
// magic, version, header and that the size agrees with the recorded layout.
// head must hold at least the preamble and the header, tail the last
// trailerLen bytes; size is the file's length.
func peekHeader(head, tail []byte, size int64) (fileHeader, error) {
	var fh fileHeader
	if size < int64(preambleLen+trailerLen) {
		return fh, fmt.Errorf("truncated: %d bytes, a checkpoint has at least %d", size, preambleLen+trailerLen)
	}
	if string(head[:len(magic)]) != magic {
		return fh, fmt.Errorf("not an mct checkpoint (starts with %q, expected %q)", head[:len(magic)], magic)
	}
	if v := binary.LittleEndian.Uint32(head[len(magic):]); v != FormatVersion {
		return fh, fmt.Errorf("checkpoint format version %d, this mct reads version %d: resume with the mct that wrote it", v, FormatVersion)
	}
	hlen := int64(binary.LittleEndian.Uint32(head[len(magic)+4:]))
	blen := binary.LittleEndian.Uint64(tail)
	// Compare in uint64 with the header length bounded so a damaged field
	// cannot overflow the sum.
	if hlen > maxHeaderLen || uint64(preambleLen+trailerLen)+uint64(hlen)+blen != uint64(size) {
		return fh, fmt.Errorf("truncated or corrupt: %d bytes, but its layout says header %d + body %d bytes", size, hlen, blen)
	}
	if int64(len(head)) < int64(preambleLen)+hlen {
		return fh, fmt.Errorf("truncated: header needs %d bytes, %d read", hlen, len(head)-preambleLen)
	}
	dec := json.NewDecoder(bytes.NewReader(head[preambleLen : int64(preambleLen)+hlen]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fh); err != nil {
		return fh, fmt.Errorf("corrupt header: %w", err)
	}
	fh.Format = FormatVersion
	return fh, nil
}

// decode parses and verifies a whole rank file held in data.
func decode(data []byte) (Header, map[string][]byte, error) {
	size := int64(len(data))
	if size < int64(preambleLen+trailerLen) {
		return Header{}, nil, fmt.Errorf("truncated: %d bytes, a checkpoint has at least %d", size, preambleLen+trailerLen)
	}
	stored := binary.LittleEndian.Uint32(data[size-4:])
	got := crc32.Checksum(data[:size-4], castagnoli)
	fh, err := peekHeader(data, data[size-trailerLen:], size)
	if err != nil {
		if got != stored && string(data[:len(magic)]) == magic {
			// The sum covers the version and length fields, so what they say of a file
			// that fails it is damage, not another format version or layout.
			return Header{}, nil, fmt.Errorf("damaged or truncated (%d bytes): checksum mismatch (CRC-32C %08x, stored %08x)", size, got, stored)
		}
		return Header{}, nil, err
	}
	if got != stored {
		return Header{}, nil, fmt.Errorf("checksum mismatch (CRC-32C %08x, stored %08x): the file is corrupt", got, stored)
	}
	var total int64
	seen := make(map[string]bool, len(fh.Sections))
	for _, s := range fh.Sections {
		if s.Name == "" || seen[s.Name] || s.Size < 0 || s.Size > 1<<40 || (s.Planes != 0 && s.Planes != planeWord) {
			return Header{}, nil, fmt.Errorf("corrupt section table entry %q (size %d)", s.Name, s.Size)
		}
		seen[s.Name] = true
		total += s.Size
	}
	bodyStart := int64(preambleLen) + int64(binary.LittleEndian.Uint32(data[len(magic)+4:]))
	body := data[bodyStart : size-trailerLen]
	zr, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return Header{}, nil, fmt.Errorf("zstd: %w", err)
	}
	defer zr.Close()
	// The table is covered by the checksum, but a bound on the up-front
	// allocation keeps a crafted table from exhausting memory at once.
	raw, err := zr.DecodeAll(body, make([]byte, 0, min(total, 1<<32)))
	if err != nil {
		return Header{}, nil, fmt.Errorf("decompress body: %w", err)
	}
	if int64(len(raw)) != total {
		return Header{}, nil, fmt.Errorf("body holds %d bytes, the section table says %d", len(raw), total)
	}
	sections := make(map[string][]byte, len(fh.Sections))
	var off int64
	var scratch []byte
	for _, s := range fh.Sections {
		// Full slice expressions: appending to one section must not
		// overwrite the next.
		data := raw[off : off+s.Size : off+s.Size]
		off += s.Size
		sections[s.Name] = data
		if s.Planes == 0 {
			continue
		}
		if scratch == nil {
			scratch = make([]byte, planeBlock)
		}
		words := planePart(len(data))
		for b := 0; b < words; b += planeBlock {
			block := data[b:min(b+planeBlock, words)]
			copy(scratch, block)
			fromPlanes(block, scratch[:len(block)])
		}
	}
	return fh.Header, sections, nil
}

// Read loads and verifies one rank file. Any damage — a flipped bit, a
// truncation, a foreign file — is an error naming path.
func Read(path string) (Header, map[string][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Header{}, nil, fmt.Errorf("read checkpoint: %w", err)
	}
	h, sections, err := decode(data)
	if err != nil {
		return Header{}, nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return h, sections, nil
}

// readHeader checks a rank file cheaply: its header and its size, not its
// body or checksum. Commit uses it so rank 0 does not read every rank's data.
func readHeader(path string) (fileHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileHeader{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fileHeader{}, err
	}
	size := st.Size()
	if size < int64(preambleLen+trailerLen) {
		return fileHeader{}, fmt.Errorf("checkpoint %s: truncated: %d bytes, a checkpoint has at least %d", path, size, preambleLen+trailerLen)
	}
	br := bufio.NewReader(f)
	head := make([]byte, preambleLen)
	if _, err := io.ReadFull(br, head); err != nil {
		return fileHeader{}, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	hlen := int64(binary.LittleEndian.Uint32(head[len(magic)+4:]))
	if hlen <= size-int64(preambleLen+trailerLen) {
		head = append(head, make([]byte, hlen)...)
		if _, err := io.ReadFull(br, head[preambleLen:]); err != nil {
			return fileHeader{}, fmt.Errorf("checkpoint %s: %w", path, err)
		}
	}
	tail := make([]byte, trailerLen)
	if _, err := f.ReadAt(tail, size-trailerLen); err != nil {
		return fileHeader{}, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	fh, err := peekHeader(head, tail, size)
	if err != nil {
		return fileHeader{}, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return fh, nil
}
