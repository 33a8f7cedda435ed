package ckpt

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"mct/internal/atomicfile"
)

const runID = "cfg-3f2a9c"

// floatBytes returns n little-endian float32 values drawn from a normal
// distribution, like a layer's weights.
func floatBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, 0, 4*n)
	for range n {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(rng.NormFloat64()*0.05)))
	}
	return b
}

// state builds the sections of one view's checkpoint; equal seeds give equal
// state, as the replicas of a view have.
func state(seed uint64, n int) map[string][]byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	return map[string][]byte{
		"w0":      floatBytes(rng, n),
		"adam.m0": floatBytes(rng, n),
		"adam.v0": floatBytes(rng, n/2),
		"rng":     binary.LittleEndian.AppendUint64(nil, seed*7919),
		"empty":   {},
	}
}

func header(rank, world, views int, step int64) Header {
	return Header{
		RunID: runID, Rank: rank, World: world, View: rank % views, Replica: rank / views,
		Step: step, Epoch: int(step / 10), Shapes: map[string][]int{"w0": {4, 16}},
	}
}

// saveStep saves every rank of a world (views views) at step and commits it.
func saveStep(t *testing.T, dir string, world, views int, step int64, keep int) {
	t.Helper()
	for r := range world {
		if err := Save(dir, header(r, world, views, step), state(uint64(step)*100+uint64(r%views), 64)); err != nil {
			t.Fatal(err)
		}
	}
	if err := Commit(dir, step, world, keep); err != nil {
		t.Fatal(err)
	}
}

// encoded returns the bytes of a rank file without touching the disk.
func encoded(t testing.TB, h Header, sections map[string][]byte) []byte {
	t.Helper()
	h.Format = FormatVersion
	var buf bytes.Buffer
	if err := encode(&buf, h, sections); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// captureWarnings routes slog to a buffer for the rest of the test.
func captureWarnings(t *testing.T) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &buf
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	h := header(3, 4, 2, 120)
	sec := state(7, 1000)
	// Byte planes with a tail that is not a whole word, and planes spanning
	// several blocks with a short last block and a tail.
	rng := rand.New(rand.NewPCG(5, 6))
	sec["odd"] = floatBytes(rng, 300)[:1001]
	sec["big"] = floatBytes(rng, (2*planeBlock+12)/4)[:2*planeBlock+11]
	if err := Save(dir, h, sec); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ckpt", "step-120", "rank-3.mct")
	got, gotSec, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	h.Format = FormatVersion
	if !reflect.DeepEqual(got, h) {
		t.Errorf("header: got %+v, want %+v", got, h)
	}
	if len(gotSec) != len(sec) {
		t.Fatalf("got %d sections, want %d", len(gotSec), len(sec))
	}
	for name, want := range sec {
		if !bytes.Equal(gotSec[name], want) {
			t.Errorf("section %q differs after the round trip", name)
		}
	}
	fh, err := readHeader(path)
	if err != nil {
		t.Fatal(err)
	}
	planes := map[string]int{}
	for _, s := range fh.Sections {
		planes[s.Name] = s.Planes
	}
	if want := map[string]int{"w0": 4, "adam.m0": 4, "adam.v0": 4, "big": 4, "odd": 4, "rng": 0, "empty": 0}; !reflect.DeepEqual(planes, want) {
		t.Errorf("byte planes by section %v, want %v", planes, want)
	}
	// Sections share one buffer; appending to one must not clobber another.
	before := slices.Clone(gotSec["adam.v0"])
	_ = append(gotSec["adam.m0"], 1, 2, 3, 4)
	if !bytes.Equal(gotSec["adam.v0"], before) {
		t.Error("appending to a section overwrote its neighbour")
	}

	// No sections at all is a valid checkpoint too.
	if err := Save(dir, header(0, 1, 1, 5), nil); err != nil {
		t.Fatal(err)
	}
	if _, s, err := Read(filepath.Join(dir, "ckpt", "step-5", "rank-0.mct")); err != nil || len(s) != 0 {
		t.Errorf("empty checkpoint: %d sections, err %v", len(s), err)
	}
}

func TestEqualStateGivesEqualFiles(t *testing.T) {
	a := encoded(t, header(0, 2, 2, 9), state(1, 500))
	b := encoded(t, header(0, 2, 2, 9), state(1, 500))
	if !bytes.Equal(a, b) {
		t.Error("two encodings of the same state differ")
	}
}

func TestSaveRejectsBadHeader(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]func(h *Header){
		"RunID": func(h *Header) { h.RunID = "" },
		"World": func(h *Header) { h.World = 0 },
		"Rank":  func(h *Header) { h.Rank = 4 },
		"Step":  func(h *Header) { h.Step = -1 },
	}
	for field, spoil := range cases {
		h := header(1, 4, 2, 3)
		spoil(&h)
		err := Save(dir, h, state(1, 4))
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("spoiled %s: got error %v, want one naming the field", field, err)
		}
	}
	if err := Save(dir, header(0, 1, 1, 3), map[string][]byte{"": {1}}); err == nil {
		t.Error("a section with an empty name was accepted")
	}
}

// Every single-byte change anywhere in the file must be caught, whether it
// hits the magic, a length, the JSON header, the zstd frame or the trailer.
func TestEveryFlippedByteIsDetected(t *testing.T) {
	good := encoded(t, header(1, 2, 2, 40), state(3, 200))
	if _, _, err := decode(good); err != nil {
		t.Fatal(err)
	}
	for pos := range good {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := slices.Clone(good)
			bad[pos] ^= mask
			if _, _, err := decode(bad); err == nil {
				t.Fatalf("byte %d of %d xor %#02x went undetected", pos, len(good), mask)
			}
		}
	}
}

func TestTruncationIsDetected(t *testing.T) {
	good := encoded(t, header(0, 1, 1, 40), state(3, 200))
	for n := range len(good) {
		_, _, err := decode(good[:n])
		if err == nil {
			t.Fatalf("file cut to %d of %d bytes went undetected", n, len(good))
		}
		if n > preambleLen && !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("cut to %d bytes: error %q does not say truncated", n, err)
		}
	}
	// Bytes appended after the end are damage too.
	if _, _, err := decode(append(slices.Clone(good), 0)); err == nil {
		t.Error("a byte appended to the file went undetected")
	}
}

func TestNotACheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.mct")
	os.WriteFile(path, []byte(strings.Repeat("not a checkpoint at all ", 4)), 0o644)
	_, _, err := Read(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not an mct checkpoint") {
		t.Errorf("got %v, want an error naming the file and saying it is not a checkpoint", err)
	}
	// A newer mct's file: another version, its checksum intact.
	good := encoded(t, header(0, 1, 1, 1), nil)
	binary.LittleEndian.PutUint32(good[len(magic):], FormatVersion+1)
	binary.LittleEndian.PutUint32(good[len(good)-4:], crc32.Checksum(good[:len(good)-4], castagnoli))
	if _, _, err := decode(good); err == nil || !strings.Contains(err.Error(), "format version") {
		t.Errorf("newer format version: got %v", err)
	}
}

// A crash between creating the temporary file and the rename leaves only the
// temporary file: nothing may treat it as a checkpoint.
func TestCrashMidWriteLeavesNothingLoadable(t *testing.T) {
	dir := t.TempDir()
	saveStep(t, dir, 2, 2, 10, 3)

	// Step 20: rank 1 finished, rank 0 died while writing.
	if err := Save(dir, header(1, 2, 2, 20), state(2001, 64)); err != nil {
		t.Fatal(err)
	}
	partial := encoded(t, header(0, 2, 2, 20), state(2000, 64))
	sd := filepath.Join(dir, "ckpt", "step-20")
	tmp := filepath.Join(sd, "rank-0.mct"+atomicfile.TempMarker+"12345")
	if err := os.WriteFile(tmp, partial[:len(partial)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Commit(dir, 20, 2, 3); err == nil || !strings.Contains(err.Error(), "rank 0") {
		t.Fatalf("commit with rank 0 missing: got %v, want an error naming rank 0", err)
	}
	if steps, _ := Steps(dir); !slices.Equal(steps, []int64{10}) {
		t.Fatalf("steps %v, want [10]", steps)
	}
	for r := range 2 {
		h, _, err := Latest(dir, r, runID)
		if err != nil || h.Step != 10 {
			t.Errorf("rank %d: Latest gave step %d, err %v; want step 10", r, h.Step, err)
		}
	}

	// A crash while overwriting an existing file keeps the old one whole.
	old := filepath.Join(dir, "ckpt", "step-10", "rank-0.mct")
	before, _ := os.ReadFile(old)
	err := atomicfile.Write(old, func(w *bufio.Writer) error {
		w.Write([]byte("half a file"))
		return errors.New("simulated crash")
	})
	if err == nil {
		t.Fatal("writeAtomic hid the writer's error")
	}
	if after, _ := os.ReadFile(old); !bytes.Equal(before, after) {
		t.Error("a failed write changed the file it was replacing")
	}
	if ents, _ := os.ReadDir(filepath.Dir(old)); len(ents) != 3 {
		t.Errorf("a failed write left files behind: %v", ents)
	}

	// The rerun of step 20 commits, and Commit sweeps the crash's debris.
	if err := Save(dir, header(0, 2, 2, 20), state(2000, 64)); err != nil {
		t.Fatal(err)
	}
	if err := Commit(dir, 20, 2, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Commit left the temporary file %s", tmp)
	}
}

func TestCommitChecksEveryRank(t *testing.T) {
	dir := t.TempDir()
	for _, r := range []int{0, 2} {
		if err := Save(dir, header(r, 3, 3, 7), state(1, 8)); err != nil {
			t.Fatal(err)
		}
	}
	if err := Commit(dir, 7, 3, 2); err == nil || !strings.Contains(err.Error(), "rank 1") {
		t.Fatalf("got %v, want an error naming rank 1", err)
	}
	// A file from another world size is not a file of this one.
	h := header(1, 3, 3, 7)
	h.World = 4
	if err := Save(dir, h, state(1, 8)); err != nil {
		t.Fatal(err)
	}
	if err := Commit(dir, 7, 3, 2); err == nil || !strings.Contains(err.Error(), "world 4") {
		t.Fatalf("got %v, want an error about world 4", err)
	}
	// Ranks that disagree on the configuration cannot form a step.
	h = header(1, 3, 3, 7)
	h.RunID = "other"
	if err := Save(dir, h, state(1, 8)); err != nil {
		t.Fatal(err)
	}
	if err := Commit(dir, 7, 3, 2); err == nil || !strings.Contains(err.Error(), "different configurations") {
		t.Fatalf("got %v, want an error about different configurations", err)
	}
	// A truncated file is found from its header and size alone.
	if err := Save(dir, header(1, 3, 3, 7), state(1, 8)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "ckpt", "step-7", "rank-2.mct")
	data, _ := os.ReadFile(p)
	os.WriteFile(p, data[:len(data)-3], 0o644)
	if err := Commit(dir, 7, 3, 2); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("got %v, want an error about a truncated file", err)
	}
	if steps, _ := Steps(dir); len(steps) != 0 {
		t.Fatalf("failed commits committed %v", steps)
	}
	os.WriteFile(p, data, 0o644)
	if err := Commit(dir, 7, 3, 2); err != nil {
		t.Fatal(err)
	}
	if steps, _ := Steps(dir); !slices.Equal(steps, []int64{7}) {
		t.Fatalf("steps %v, want [7]", steps)
	}
}

func TestPruneKeepsLastK(t *testing.T) {
	dir := t.TempDir()
	// An attempt at step 15 that never committed.
	if err := Save(dir, header(0, 2, 2, 15), state(1, 8)); err != nil {
		t.Fatal(err)
	}
	for step := int64(10); step <= 60; step += 10 {
		saveStep(t, dir, 2, 2, step, 3)
	}
	if steps, _ := Steps(dir); !slices.Equal(steps, []int64{40, 50, 60}) {
		t.Errorf("steps %v, want [40 50 60]", steps)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "ckpt"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"step-40", "step-50", "step-60"}; !slices.Equal(names, want) {
		t.Errorf("directories %v, want %v", names, want)
	}

	all := t.TempDir()
	for step := int64(1); step <= 5; step++ {
		saveStep(t, all, 1, 1, step, 0)
	}
	if steps, _ := Steps(all); len(steps) != 5 {
		t.Errorf("keep 0 kept %v, want all 5 steps", steps)
	}
}

// Steps are found by number, not by name order: step-100 is newer than step-99.
func TestStepsOrderNumerically(t *testing.T) {
	dir := t.TempDir()
	for _, s := range []int64{9, 99, 100} {
		saveStep(t, dir, 1, 1, s, 0)
	}
	os.MkdirAll(filepath.Join(dir, "ckpt", "step-0100x"), 0o755)
	if steps, _ := Steps(dir); !slices.Equal(steps, []int64{9, 99, 100}) {
		t.Errorf("steps %v, want [9 99 100]", steps)
	}
	if h, _, err := Latest(dir, 0, runID); err != nil || h.Step != 100 {
		t.Errorf("Latest: step %d, err %v; want 100", h.Step, err)
	}
}

func TestFallbackToPreviousStep(t *testing.T) {
	for _, damage := range []string{"flip", "truncate", "remove"} {
		t.Run(damage, func(t *testing.T) {
			warnings := captureWarnings(t)
			dir := t.TempDir()
			saveStep(t, dir, 2, 2, 100, 3)
			saveStep(t, dir, 2, 2, 200, 3)
			bad := filepath.Join(dir, "ckpt", "step-200", "rank-0.mct")
			data, _ := os.ReadFile(bad)
			switch damage {
			case "flip":
				data[len(data)/2] ^= 0x10
				os.WriteFile(bad, data, 0o644)
			case "truncate":
				os.WriteFile(bad, data[:len(data)-100], 0o644)
			case "remove":
				os.Remove(bad)
			}
			h, sec, err := Latest(dir, 0, runID)
			if err != nil {
				t.Fatal(err)
			}
			if h.Step != 100 || !bytes.Equal(sec["w0"], state(100*100, 64)["w0"]) {
				t.Errorf("got step %d; want the state of step 100", h.Step)
			}
			if !strings.Contains(warnings.String(), bad) {
				t.Errorf("no warning names %s; log:\n%s", bad, warnings)
			}
			// Rank 1 is undamaged and gets step 200; the ranks agree on the
			// older step and rank 1 loads it explicitly.
			if h, _, err := Latest(dir, 1, runID); err != nil || h.Step != 200 {
				t.Errorf("rank 1: step %d, err %v; want 200", h.Step, err)
			}
			if h, _, err := Load(dir, 100, 1, runID); err != nil || h.Step != 100 {
				t.Errorf("rank 1 Load(100): step %d, err %v", h.Step, err)
			}
			if _, _, err := Load(dir, 200, 0, runID); err == nil {
				t.Error("Load of the damaged file succeeded")
			}
		})
	}
}

func TestAllStepsDamaged(t *testing.T) {
	captureWarnings(t)
	dir := t.TempDir()
	saveStep(t, dir, 1, 1, 1, 2)
	saveStep(t, dir, 1, 1, 2, 2)
	for _, s := range []string{"step-1", "step-2"} {
		os.WriteFile(filepath.Join(dir, "ckpt", s, "rank-0.mct"), []byte("garbage"), 0o644)
	}
	_, _, err := Latest(dir, 0, runID)
	if err == nil || errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("got %v; damaged checkpoints must not look like a fresh start", err)
	}
}

func TestNoCheckpoint(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Latest(dir, 0, runID); !errors.Is(err, ErrNoCheckpoint) {
		t.Errorf("empty directory: got %v, want ErrNoCheckpoint", err)
	}
	// Files without a commit marker are not a checkpoint.
	if err := Save(dir, header(0, 1, 1, 5), state(1, 8)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LatestForView(dir, 0, runID); !errors.Is(err, ErrNoCheckpoint) {
		t.Errorf("uncommitted step: got %v, want ErrNoCheckpoint", err)
	}
	if _, _, err := Load(dir, 5, 0, runID); err == nil || !strings.Contains(err.Error(), "not committed") {
		t.Errorf("Load of an uncommitted step: got %v", err)
	}
	if steps, err := Steps(filepath.Join(dir, "absent")); err != nil || len(steps) != 0 {
		t.Errorf("absent directory: %v, %v", steps, err)
	}
}

func TestOtherConfigurationIsRefused(t *testing.T) {
	dir := t.TempDir()
	saveStep(t, dir, 2, 2, 10, 2)
	for name, load := range map[string]func() error{
		"Latest":        func() error { _, _, err := Latest(dir, 0, "cfg-other"); return err },
		"LatestForView": func() error { _, _, err := LatestForView(dir, 1, "cfg-other"); return err },
		"Load":          func() error { _, _, err := Load(dir, 10, 1, "cfg-other"); return err },
	} {
		err := load()
		if !errors.Is(err, ErrOtherConfig) {
			t.Errorf("%s: got %v, want ErrOtherConfig", name, err)
			continue
		}
		for _, want := range []string{dir, runID, "cfg-other", "use a new --out or the same flags"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not contain %q", name, err, want)
			}
		}
	}
}

// Resuming with another number of replicas: V=2 views, R=2 replicas wrote
// the checkpoint; any rank of a view may stand in for another.
func TestLatestForView(t *testing.T) {
	warnings := captureWarnings(t)
	dir := t.TempDir()
	saveStep(t, dir, 4, 2, 30, 2)
	for view := range 2 {
		h, sec, err := LatestForView(dir, view, runID)
		if err != nil || h.View != view || h.Rank != view {
			t.Fatalf("view %d: header %+v, err %v", view, h, err)
		}
		if !bytes.Equal(sec["w0"], state(3000+uint64(view), 64)["w0"]) {
			t.Errorf("view %d: wrong state", view)
		}
	}
	// Rank 0's file is damaged: rank 2 (view 0, replica 1) serves, with no
	// fallback to an older step.
	bad := filepath.Join(dir, "ckpt", "step-30", "rank-0.mct")
	os.WriteFile(bad, []byte("garbage"), 0o644)
	h, _, err := LatestForView(dir, 0, runID)
	if err != nil || h.Rank != 2 || h.Step != 30 {
		t.Errorf("damaged rank 0: got rank %d step %d, err %v; want rank 2 step 30", h.Rank, h.Step, err)
	}
	if !strings.Contains(warnings.String(), bad) {
		t.Errorf("no warning names %s", bad)
	}
	if h, _, err := LoadForView(dir, 30, 0, runID); err != nil || h.Rank != 2 {
		t.Errorf("LoadForView: rank %d, err %v", h.Rank, err)
	}
	// A view the run never had, or a rank beyond the old world, is an error
	// that older steps cannot cure.
	if _, _, err := LatestForView(dir, 2, runID); err == nil || !strings.Contains(err.Error(), "view 2") {
		t.Errorf("view 2: got %v", err)
	}
	if _, _, err := Latest(dir, 5, runID); err == nil || !strings.Contains(err.Error(), "LatestForView") {
		t.Errorf("rank 5 of a 4-rank checkpoint: got %v", err)
	}
}

// Saving a step that is already committed makes it uncommitted until the new
// files are committed: files of two histories must never load as one step.
func TestResaveUncommits(t *testing.T) {
	dir := t.TempDir()
	saveStep(t, dir, 2, 2, 10, 3)
	saveStep(t, dir, 2, 2, 20, 3)
	if err := Save(dir, header(0, 2, 2, 20), state(1, 8)); err != nil {
		t.Fatal(err)
	}
	if steps, _ := Steps(dir); !slices.Equal(steps, []int64{10}) {
		t.Errorf("steps %v, want [10]", steps)
	}
}

// After a resume from step 10, committing step 15 abandons the newer step 20.
func TestCommitAbandonsNewerHistory(t *testing.T) {
	dir := t.TempDir()
	saveStep(t, dir, 1, 1, 10, 3)
	saveStep(t, dir, 1, 1, 20, 3)
	saveStep(t, dir, 1, 1, 15, 3)
	if steps, _ := Steps(dir); !slices.Equal(steps, []int64{10, 15}) {
		t.Errorf("steps %v, want [10 15]", steps)
	}
	if h, _, err := Latest(dir, 0, runID); err != nil || h.Step != 15 {
		t.Errorf("Latest: step %d, err %v; want 15", h.Step, err)
	}
}

// A world that shrank leaves rank files that Commit removes.
func TestCommitRemovesRanksBeyondWorld(t *testing.T) {
	dir := t.TempDir()
	for r := range 4 {
		Save(dir, header(r, 4, 2, 8), state(1, 8))
	}
	saveStep(t, dir, 2, 2, 8, 2)
	ents, _ := os.ReadDir(filepath.Join(dir, "ckpt", "step-8"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{markerName, "rank-0.mct", "rank-1.mct"}; !slices.Equal(names, want) {
		t.Errorf("files %v, want %v", names, want)
	}
}

// FuzzDecode feeds decode files whose checksum has been made valid again
// after mutation, so the fuzzer gets past the CRC into the header, the
// section table and the zstd frame. Nothing may panic, and anything that
// decodes must re-encode to a file that decodes to the same state.
func FuzzDecode(f *testing.F) {
	f.Add(encoded(f, header(0, 2, 2, 3), state(1, 80)))
	f.Add(encoded(f, header(1, 2, 2, 3), nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) >= preambleLen+trailerLen {
			binary.LittleEndian.PutUint32(data[len(data)-4:], crc32.Checksum(data[:len(data)-4], castagnoli))
		}
		h, sec, err := decode(data)
		if err != nil {
			return
		}
		h2, sec2, err := decode(encoded(t, h, sec))
		if err != nil {
			t.Fatalf("re-encoded file does not decode: %v", err)
		}
		if !reflect.DeepEqual(h, h2) || len(sec) != len(sec2) {
			t.Fatalf("re-encoding changed the header or the sections")
		}
		for name := range sec {
			if !bytes.Equal(sec[name], sec2[name]) {
				t.Fatalf("re-encoding changed section %q", name)
			}
		}
	})
}

// Ranks as goroutines, the way the local transport runs them: each saves
// concurrently, a barrier, rank 0 commits, and at the end every rank
// resumes concurrently. Run with -race.
func TestRanksConcurrently(t *testing.T) {
	dir := t.TempDir()
	const world, views = 6, 3
	for step := int64(1); step <= 4; step++ {
		errs := make(chan error, world)
		for r := range world {
			go func() {
				errs <- Save(dir, header(r, world, views, step), state(uint64(step)*100+uint64(r%views), 256))
			}()
		}
		for range world {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if err := Commit(dir, step, world, 2); err != nil {
			t.Fatal(err)
		}
	}
	type result struct {
		h   Header
		sec map[string][]byte
		err error
	}
	results := make([]chan result, world)
	for r := range world {
		results[r] = make(chan result, 1)
		go func() {
			h, sec, err := Latest(dir, r, runID)
			results[r] <- result{h, sec, err}
		}()
	}
	for r := range world {
		res := <-results[r]
		if res.err != nil || res.h.Step != 4 || res.h.Rank != r {
			t.Fatalf("rank %d: header %+v, err %v", r, res.h, res.err)
		}
		if !bytes.Equal(res.sec["adam.m0"], state(400+uint64(r%views), 256)["adam.m0"]) {
			t.Errorf("rank %d resumed with the wrong state", r)
		}
	}
	if steps, _ := Steps(dir); !slices.Equal(steps, []int64{3, 4}) {
		t.Errorf("steps %v, want [3 4]", steps)
	}
}

// TestDamagedHeaderIsNotAnotherVersion: a damaged byte in the version or a length field
// is reported as damage (the checksum covers them), not as a file of another format
// version to resume "with the mct that wrote it", nor by a body length read from the
// wrong place.
func TestDamagedHeaderIsNotAnotherVersion(t *testing.T) {
	good := encoded(t, header(0, 1, 1, 40), state(3, 200))
	for _, pos := range []int{len(magic) + 2, len(magic) + 5, len(good) - 6} { // version, header length, body length
		bad := slices.Clone(good)
		bad[pos] ^= 0x07
		_, _, err := decode(bad)
		if err == nil || !strings.Contains(err.Error(), "checksum mismatch") || strings.Contains(err.Error(), "format version") || strings.Contains(err.Error(), "layout says") {
			t.Errorf("byte %d damaged: %v, want a checksum mismatch", pos, err)
		}
	}
}
