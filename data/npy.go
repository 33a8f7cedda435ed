package data

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"github.com/klauspost/compress/zstd"
	"mct/internal/atomicfile"
)

// Dtype is a NumPy array-protocol type string as it appears in an NPY header.
type Dtype string

// The element types mct reads and writes. Features are floats; labels are integers.
const (
	Float32 Dtype = "<f4"
	Float16 Dtype = "<f2"
	Float64 Dtype = "<f8"
	Int64   Dtype = "<i8"
	Int32   Dtype = "<i4"
	Uint8   Dtype = "|u1"
)

// Size is the number of bytes of one element, or 0 for a type mct does not handle.
func (d Dtype) Size() int {
	switch d {
	case Float32, Int32:
		return 4
	case Float16:
		return 2
	case Float64, Int64:
		return 8
	case Uint8:
		return 1
	}
	return 0
}

// Array is an n-dimensional array in C (row-major) order. Raw holds the elements
// little-endian, len(Raw) == Len()*Dtype.Size(). Raw may be a copy-on-write
// memory mapping of the file (see ReadNPY); writing to it never changes the file.
type Array struct {
	Shape []int
	Dtype Dtype
	Raw   []byte
}

// Len is the number of elements.
func (a *Array) Len() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

// NewFloat32 wraps v (row-major, len(v) == product of shape) as a '<f4' array without copying.
func NewFloat32(shape []int, v []float32) *Array {
	a := &Array{Shape: append([]int(nil), shape...), Dtype: Float32}
	if a.Len() != len(v) {
		panic(fmt.Sprintf("data.NewFloat32: shape %v needs %d elements, have %d", shape, a.Len(), len(v)))
	}
	a.Raw = f32Bytes(v)
	return a
}

// NewFloat16 rounds v to IEEE half precision (round to nearest even) as a '<f2' array.
func NewFloat16(shape []int, v []float32) *Array {
	a := &Array{Shape: append([]int(nil), shape...), Dtype: Float16}
	if a.Len() != len(v) {
		panic(fmt.Sprintf("data.NewFloat16: shape %v needs %d elements, have %d", shape, a.Len(), len(v)))
	}
	a.Raw = make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(a.Raw[2*i:], f32ToF16(x))
	}
	return a
}

// NewInt64 copies v into a '<i8' array of the given shape (NumPy's default integer, used for labels).
func NewInt64(shape []int, v []int32) *Array {
	a := &Array{Shape: append([]int(nil), shape...), Dtype: Int64}
	if a.Len() != len(v) {
		panic(fmt.Sprintf("data.NewInt64: shape %v needs %d elements, have %d", shape, a.Len(), len(v)))
	}
	a.Raw = make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(a.Raw[8*i:], uint64(int64(x)))
	}
	return a
}

// Float32s returns the elements as float32, widening or narrowing '<f2' and '<f8'.
// For '<f4' it returns Raw itself reinterpreted (no copy). Integer arrays are an error.
func (a *Array) Float32s() ([]float32, error) {
	n := a.Len()
	switch a.Dtype {
	case Float32:
		if n == 0 {
			return []float32{}, nil
		}
		if uintptr(unsafe.Pointer(&a.Raw[0]))%4 != 0 {
			out := make([]float32, n)
			for i := range out {
				out[i] = math.Float32frombits(binary.LittleEndian.Uint32(a.Raw[4*i:]))
			}
			return out, nil
		}
		return unsafe.Slice((*float32)(unsafe.Pointer(&a.Raw[0])), n), nil
	case Float16:
		out := make([]float32, n)
		for i := range out {
			out[i] = f16ToF32(binary.LittleEndian.Uint16(a.Raw[2*i:]))
		}
		return out, nil
	case Float64:
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(a.Raw[8*i:])))
		}
		return out, nil
	}
	return nil, fmt.Errorf("dtype %s is not a float type (want <f4, <f2 or <f8: save x.astype(np.float32))", a.Dtype)
}

// Int32s returns integer elements as int32; values outside the int32 range are an error.
func (a *Array) Int32s() ([]int32, error) {
	n := a.Len()
	out := make([]int32, n)
	switch a.Dtype {
	case Uint8:
		for i := range out {
			out[i] = int32(a.Raw[i])
		}
	case Int32:
		for i := range out {
			out[i] = int32(binary.LittleEndian.Uint32(a.Raw[4*i:]))
		}
	case Int64:
		for i := range out {
			v := int64(binary.LittleEndian.Uint64(a.Raw[8*i:]))
			if v < math.MinInt32 || v > math.MaxInt32 {
				return nil, fmt.Errorf("element %d = %d does not fit int32", i, v)
			}
			out[i] = int32(v)
		}
	default:
		return nil, fmt.Errorf("dtype %s is not an integer type (want <i8, <i4 or |u1: save y.astype(np.int64))", a.Dtype)
	}
	return out, nil
}

// npyMagic starts every NPY file: "\x93NUMPY".
var npyMagic = []byte("\x93NUMPY")

// maxHeader bounds the header dictionary we accept; NumPy's own loader refuses
// headers over 10000 bytes unless told otherwise.
const maxHeader = 1 << 20

// mmapThreshold is the data size from which ReadNPY maps an uncompressed file
// instead of reading it: below it a read is as fast and keeps nothing mapped.
const mmapThreshold = 8 << 20

// ReadNPY reads a .npy file, or a zstd-compressed one if the path ends in .zst.
// Large uncompressed files are memory-mapped copy-on-write (Raw then lives as long
// as the process). Every malformed input gives one error line naming the file and
// the field.
func ReadNPY(path string) (*Array, error) {
	if strings.HasSuffix(path, ".zst") {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		dec, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("%s: zstd: %v", path, err)
		}
		defer dec.Close()
		b, err := io.ReadAll(dec)
		if err != nil {
			return nil, fmt.Errorf("%s: zstd stream: %v (file truncated or not zstd)", path, err)
		}
		return DecodeNPY(path, b)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// Read just the header first (at most maxHeader bytes plus the preamble) so a
	// large file can be mapped rather than copied.
	head := make([]byte, min(st.Size(), 12+maxHeader))
	if _, err := io.ReadFull(f, head); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	a, off, err := parseNPYHeader(path, head, st.Size())
	if err != nil {
		return nil, err
	}
	need := int64(a.Len()) * int64(a.Dtype.Size())
	if int64(len(head)) == st.Size() { // small file: already read whole
		a.Raw = head[off:]
		return a, nil
	}
	if need >= mmapThreshold {
		if m, err := mapFile(f, st.Size()); err == nil {
			a.Raw = m[off : off+need]
			return a, nil
		}
	}
	a.Raw = make([]byte, need)
	if _, err := f.ReadAt(a.Raw, off); err != nil {
		return nil, fmt.Errorf("%s: data: %v", path, err)
	}
	return a, nil
}

// DecodeNPY parses a whole NPY file held in b; name is used in errors.
func DecodeNPY(name string, b []byte) (*Array, error) {
	a, off, err := parseNPYHeader(name, b, int64(len(b)))
	if err != nil {
		return nil, err
	}
	a.Raw = b[off:]
	return a, nil
}

// parseNPYHeader parses the preamble and header dictionary found at the start of
// b and checks that a file of fileSize bytes holds exactly the data it declares.
// It returns the array (without Raw) and the offset of the data.
func parseNPYHeader(name string, b []byte, fileSize int64) (*Array, int64, error) {
	if len(b) < 10 || !bytes.Equal(b[:6], npyMagic) {
		what := "not an NPY file"
		switch {
		case bytes.HasPrefix(b, []byte("PK\x03\x04")):
			what = "a zip archive (np.savez, torch.save), not an NPY file: write the matrix with np.save(path, x) (x.numpy() for a tensor)"
		case len(b) > 0 && b[0] == 0x80:
			what = "a pickle (torch.save, pickle.dump), not an NPY file: mct never unpickles; write the matrix with np.save(path, x)"
		}
		return nil, 0, fmt.Errorf("%s: magic: %s (want \\x93NUMPY at byte 0)", name, what)
	}
	major, minor := b[6], b[7]
	var hlen, off int
	switch major {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(b[8:])), 10
	case 2, 3:
		if len(b) < 12 {
			return nil, 0, fmt.Errorf("%s: header length: file truncated", name)
		}
		hlen, off = int(binary.LittleEndian.Uint32(b[8:])), 12
	default:
		return nil, 0, fmt.Errorf("%s: version: %d.%d not supported (want 1.0, 2.0 or 3.0)", name, major, minor)
	}
	if hlen > maxHeader || off+hlen > len(b) {
		return nil, 0, fmt.Errorf("%s: header: length %d runs past the end of the file (truncated?)", name, hlen)
	}
	a, err := parseHeaderDict(string(b[off : off+hlen]))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: header: %v", name, err)
	}
	if len(a.Shape) > 64 {
		return nil, 0, fmt.Errorf("%s: shape: %d dimensions, want at most 64", name, len(a.Shape))
	}
	n := int64(1)
	for _, d := range a.Shape {
		if d < 0 || (d > 0 && n > (1<<50)/int64(d)) {
			return nil, 0, fmt.Errorf("%s: shape: %v is negative or too large", name, a.Shape)
		}
		n *= int64(d)
	}
	start := int64(off + hlen)
	need := n * int64(a.Dtype.Size())
	if got := fileSize - start; got != need {
		return nil, 0, fmt.Errorf("%s: data: shape %v of %s needs %d bytes, file has %d (truncated or wrong header)", name, a.Shape, a.Dtype, need, got)
	}
	return a, start, nil
}

// parseHeaderDict parses the Python dict literal of an NPY header, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }. It accepts only the
// literal forms NumPy writes: quoted strings, True/False and tuples of integers.
func parseHeaderDict(h string) (*Array, error) {
	p := &dictParser{s: strings.TrimRight(h, " \n\x00")}
	if !p.eat('{') {
		return nil, fmt.Errorf("want a dict starting with '{'")
	}
	var a Array
	seen := map[string]bool{}
	for {
		p.space()
		if p.eat('}') {
			break
		}
		key, err := p.str()
		if err != nil {
			return nil, fmt.Errorf("key: %v", err)
		}
		if seen[key] {
			return nil, fmt.Errorf("key %q repeated", key)
		}
		seen[key] = true
		p.space()
		if !p.eat(':') {
			return nil, fmt.Errorf("want ':' after key %q", key)
		}
		p.space()
		switch key {
		case "descr":
			if p.peek() == '[' {
				return nil, fmt.Errorf("descr: structured dtypes are not supported (want <f4, <f2, <f8, <i8, <i4 or |u1)")
			}
			d, err := p.str()
			if err != nil {
				return nil, fmt.Errorf("descr: %v", err)
			}
			a.Dtype = normDtype(d)
			if a.Dtype.Size() == 0 {
				if strings.HasPrefix(d, ">") {
					return nil, fmt.Errorf("descr: %q is big-endian, not supported (want little-endian: save x.astype(x.dtype.newbyteorder('<')))", d)
				}
				what := "not supported"
				if strings.Contains(d, "O") {
					what = "an object dtype (pickled Python objects); mct never unpickles"
				}
				return nil, fmt.Errorf("descr: %q is %s (want <f4, <f2, <f8, <i8, <i4 or |u1, little-endian)", d, what)
			}
		case "fortran_order":
			switch {
			case p.word("False"):
			case p.word("True"):
				return nil, fmt.Errorf("fortran_order: True is not supported (want C order: save np.ascontiguousarray(x))")
			default:
				return nil, fmt.Errorf("fortran_order: want True or False")
			}
		case "shape":
			s, err := p.tuple()
			if err != nil {
				return nil, fmt.Errorf("shape: %v", err)
			}
			a.Shape = s
		default:
			return nil, fmt.Errorf("unknown key %q (want descr, fortran_order, shape)", key)
		}
		p.space()
		if !p.eat(',') {
			p.space()
			if !p.eat('}') {
				return nil, fmt.Errorf("want ',' or '}' after %q", key)
			}
			break
		}
	}
	if p.space(); p.i != len(p.s) {
		return nil, fmt.Errorf("unexpected text after the dict")
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return nil, fmt.Errorf("key %q missing", k)
		}
	}
	return &a, nil
}

// normDtype maps the spellings NumPy accepts for one type to ours ('<u1' and
// '|i1'-style byte order marks on 1-byte types).
func normDtype(d string) Dtype {
	switch d {
	case "<u1", "|u1", "u1":
		return Uint8
	}
	return Dtype(d)
}

type dictParser struct {
	s string
	i int
}

func (p *dictParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\n' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *dictParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *dictParser) eat(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

func (p *dictParser) word(w string) bool {
	if strings.HasPrefix(p.s[p.i:], w) {
		p.i += len(w)
		return true
	}
	return false
}

func (p *dictParser) str() (string, error) {
	q := p.peek()
	if q != '\'' && q != '"' {
		return "", fmt.Errorf("want a quoted string")
	}
	j := strings.IndexByte(p.s[p.i+1:], q)
	if j < 0 {
		return "", fmt.Errorf("unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+j]
	p.i += j + 2
	return v, nil
}

func (p *dictParser) tuple() ([]int, error) {
	if !p.eat('(') {
		return nil, fmt.Errorf("want a tuple like (60000, 784)")
	}
	dims := []int{}
	for {
		p.space()
		if p.eat(')') {
			return dims, nil
		}
		j := p.i
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		if j == p.i {
			return nil, fmt.Errorf("want a non-negative integer at %q", p.s[p.i:min(len(p.s), p.i+10)])
		}
		d, err := strconv.Atoi(p.s[p.i:j])
		if err != nil || d > 1<<40 {
			return nil, fmt.Errorf("dimension %q too large", p.s[p.i:j])
		}
		dims = append(dims, d)
		p.i = j
		p.space()
		if !p.eat(',') {
			p.space()
			if !p.eat(')') {
				return nil, fmt.Errorf("want ',' or ')' in tuple")
			}
			return dims, nil
		}
	}
}

// EncodeNPY returns the NPY encoding of a.
func EncodeNPY(a *Array) []byte {
	return append(npyHeader(a), a.Raw...)
}

// npyHeader returns the preamble and header of a's NPY encoding: version 1.0 (NumPy arrays have at most
// 64 dimensions, so the header always fits its 16-bit length), the header padded
// so data starts 64-byte aligned (NumPy's rule, which also lets a mapped '<f4'
// file be used in place).
func npyHeader(a *Array) []byte {
	if a.Dtype.Size() == 0 {
		panic(fmt.Sprintf("data.EncodeNPY: unsupported dtype %q", a.Dtype))
	}
	if len(a.Raw) != a.Len()*a.Dtype.Size() {
		panic(fmt.Sprintf("data.EncodeNPY: shape %v of %s needs %d bytes, Raw has %d", a.Shape, a.Dtype, a.Len()*a.Dtype.Size(), len(a.Raw)))
	}
	if len(a.Shape) > 64 {
		panic(fmt.Sprintf("data.EncodeNPY: %d dimensions, NumPy allows at most 64", len(a.Shape)))
	}
	dims := make([]string, len(a.Shape))
	for i, d := range a.Shape {
		dims[i] = strconv.Itoa(d)
	}
	shape := "(" + strings.Join(dims, ", ")
	if len(dims) == 1 {
		shape += ","
	}
	shape += ")"
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", a.Dtype, shape)
	const pre = 10
	total := (pre + len(dict) + 1 + 63) / 64 * 64
	hdr := make([]byte, total)
	copy(hdr, npyMagic)
	hdr[6] = 1
	binary.LittleEndian.PutUint16(hdr[8:], uint16(total-pre))
	n := copy(hdr[pre:], dict)
	for i := pre + n; i < total-1; i++ {
		hdr[i] = ' '
	}
	hdr[total-1] = '\n'
	return hdr
}

// WriteNPY writes a to path atomically (temporary file in the same directory,
// fsync, rename), zstd-compressed if path ends in .zst.
func WriteNPY(path string, a *Array) error {
	hdr := npyHeader(a)
	if strings.HasSuffix(path, ".zst") {
		return atomicfile.WriteFile(path, zstdEncode(hdr, a.Raw))
	}
	return atomicfile.WriteFile(path, hdr, a.Raw)
}

// zstdEncode compresses the concatenation of parts as one zstd stream.
func zstdEncode(parts ...[]byte) []byte {
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		panic(err) // only invalid options make NewWriter fail
	}
	for _, p := range parts {
		enc.Write(p) // writes to a bytes.Buffer cannot fail
	}
	enc.Close()
	return buf.Bytes()
}

func f32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// f16ToF32 converts IEEE 754 binary16 bits to float32, subnormals, infinities and NaN included.
func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0 && man == 0:
		return math.Float32frombits(sign)
	case exp == 0:
		// Subnormal half: value = man * 2^-24, exactly representable in float32.
		f := float32(man) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
}

// f32ToF16 rounds a float32 to the nearest binary16 (ties to even), with
// overflow to infinity and gradual underflow, as NumPy's astype(np.float16) does.
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		// Subnormal: shift the implicit-1 mantissa right and round to nearest even.
		m := man | 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		r := m >> shift
		rem := m & (1<<shift - 1)
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | man>>13
	rem := man & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++ // may carry into the exponent, which is the correct rounding (up to infinity)
	}
	return sign | uint16(r)
}
