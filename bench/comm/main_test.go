package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"mct/internal/testenv"
)

// line is one of the program's output lines; the time and rate vary, the rest is exact.
var line = regexp.MustCompile(`^(local|mpi) +np=(\d+) (AllgatherF32|AllreduceF32) n=(\d+): \S+ per call, (\d+) bytes received per rank, [0-9.]+ GB/s$`)

// checkLines asserts that out is exactly the two lines of want, "transport np name n bytes"
// each, in order.
func checkLines(t *testing.T, out string, want ...string) {
	t.Helper()
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(got), len(want), out)
	}
	for i, l := range got {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("line %d has not the documented shape: %q", i+1, l)
			continue
		}
		if g := strings.Join(m[1:], " "); g != want[i] {
			t.Errorf("line %d: %q, want %q", i+1, g, want[i])
		}
	}
}

// TestLocal runs the program as its doc comment's `./comm -local N` does, at a tiny size:
// three goroutine ranks, 4×5 floats gathered (2·20·4 bytes received per rank), 30 floats
// summed (2·(3−1)/3 of 120 bytes).
func TestLocal(t *testing.T) {
	var out bytes.Buffer
	if err := mainErr([]string{"-local", "3", "-rows", "4", "-cols", "5", "-params", "30", "-iters", "2"}, &out); err != nil {
		t.Fatal(err)
	}
	checkLines(t, out.String(), "local 3 AllgatherF32 20 160", "local 3 AllreduceF32 30 160")
}

// TestMPI builds the program and runs it as its doc comment's `mpirun --oversubscribe
// -np 4 ./comm` does, with 2 ranks and the default gather (1024×10 floats per rank).
func TestMPI(t *testing.T) {
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		testenv.Missing(t, "mpirun not found: apt-get install openmpi-bin")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "comm")
	if out, err := exec.Command("go", "build", "-o", bin, "mct/bench/comm").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(mpirun, "--oversubscribe", "-np", "2", bin, "-params", "1000", "-iters", "2")
	cmd.Env = append(os.Environ(), "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mpirun: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	checkLines(t, stdout.String(), "mpi 2 AllgatherF32 10240 40960", "mpi 2 AllreduceF32 1000 4000")
}

// TestBadFlags: a size below 1 or a stray argument is one error naming it.
func TestBadFlags(t *testing.T) {
	for args, want := range map[string]string{
		"-iters 0": "-iters 0: want at least 1",
		"-rows -1": "-rows -1: want at least 1",
		"4":        `unexpected argument "4"`,
	} {
		err := mainErr(strings.Fields(args), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", args, err, want)
		}
	}
}
