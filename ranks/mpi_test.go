//go:build cgo && !nompi

package ranks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mct/internal/testenv"
)

// mpirun finds the launcher: its absence fails the test in CI (CI=true),
// where the MPI transport must be tested, and skips it elsewhere.
func mpirun(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("mpirun")
	if err != nil {
		testenv.Missing(t, "mpirun not found (apt-get install openmpi-bin libopenmpi-dev); the MPI transport is untested")
	}
	return path
}

type mpiRun struct {
	out     string
	code    int
	elapsed time.Duration
}

// launch runs bin on np ranks under mpirun, playing scenario, and kills the
// whole process group if it outlives timeout.
func launch(t *testing.T, np int, bin, scenario string, timeout time.Duration, env ...string) mpiRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, mpirun(t), "--oversubscribe", "-np", fmt.Sprint(np), bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), workerEnv+"="+scenario)
	if os.Geteuid() == 0 {
		cmd.Env = append(cmd.Env, "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	run := mpiRun{out: out.String(), elapsed: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("mpirun -np %d (%s) still running after %v: a hang\n%s", np, scenario, timeout, run.out)
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		run.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("mpirun: %v", err)
	}
	return run
}

// TestMPIEqualsLocal runs every collective under mpirun and checks each
// rank's results bit for bit against the local transport's.
// Both ways of making MPI calls are covered: from the calling goroutine
// (MPI_THREAD_SERIALIZED, the default) and through the MPI thread
// (MCT_MPI_FUNNELED=1).
func TestMPIEqualsLocal(t *testing.T) {
	for _, tc := range []struct {
		np       int
		funneled string
	}{{1, "0"}, {2, "0"}, {4, "0"}, {2, "1"}} {
		np := tc.np
		dir := t.TempDir()
		run := launch(t, np, os.Args[0], "exercise", 60*time.Second, "MCT_RANKS_OUT="+dir, "MCT_MPI_FUNNELED="+tc.funneled)
		if run.code != 0 {
			t.Fatalf("mpirun -np %d (MCT_MPI_FUNNELED=%s) exited %d:\n%s", np, tc.funneled, run.code, run.out)
		}
		local := runExercise(t, np)
		for r := range np {
			got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("rank-%d.bin", r)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, local[r]) {
				t.Errorf("np %d rank %d: MPI results (%d bytes) differ from the local transport's (%d bytes)", np, r, len(got), len(local[r]))
			}
		}
		t.Logf("np %d, MCT_MPI_FUNNELED=%s: %d bytes of results per rank equal bit for bit (%v)", np, tc.funneled, len(local[0]), run.elapsed.Round(time.Millisecond))
	}
}

// TestMPIAllgatherAddr: the all-gather on addresses (what a CUDA backend passes to a
// CUDA-aware MPI) on memory outside Go's heap, in and out of place, with MPI called
// from the caller's thread and from the MPI thread (MCT_MPI_FUNNELED=1).
func TestMPIAllgatherAddr(t *testing.T) {
	for _, tc := range []struct {
		np       int
		funneled string
	}{{2, "0"}, {3, "0"}, {2, "1"}} {
		if run := launch(t, tc.np, os.Args[0], "addr", 60*time.Second, "MCT_MPI_FUNNELED="+tc.funneled); run.code != 0 {
			t.Errorf("mpirun -np %d (MCT_MPI_FUNNELED=%s) exited %d:\n%s", tc.np, tc.funneled, run.code, run.out)
		}
	}
}

func TestMPIInfo(t *testing.T) {
	run := launch(t, 2, os.Args[0], "info", 60*time.Second)
	if run.code != 0 {
		t.Fatalf("exited %d:\n%s", run.code, run.out)
	}
	if !strings.Contains(run.out, "rank 1: ") || !strings.Contains(run.out, "cuda-aware=") {
		t.Errorf("no report from every rank:\n%s", run.out)
	}
	t.Log(strings.TrimSpace(run.out))
}

func TestMPILayoutError(t *testing.T) {
	run := launch(t, 3, os.Args[0], "layout", 60*time.Second)
	if run.code == 0 {
		t.Fatalf("-np 3 with 2 views succeeded:\n%s", run.out)
	}
	for r := range 3 {
		want := fmt.Sprintf("rank %d: world size 3 is not a multiple of the 2 views: run mpirun -np 2 or -np 4", r)
		if !strings.Contains(run.out, want) {
			t.Errorf("missing %q in:\n%s", want, run.out)
		}
	}
}

// A rank killed with SIGKILL inside a loop of collectives must bring the job
// down, not leave the others blocked.
func TestMPIKilledRankEndsJob(t *testing.T) {
	run := launch(t, 4, os.Args[0], "kill", 60*time.Second)
	if run.code == 0 {
		t.Fatalf("mpirun exited 0 although a rank was killed:\n%s", run.out)
	}
	if run.elapsed > 20*time.Second {
		t.Errorf("mpirun took %v to notice the dead rank", run.elapsed)
	}
	t.Logf("mpirun exited %d after %v", run.code, run.elapsed.Round(time.Millisecond))
}

func TestMPIAbort(t *testing.T) {
	run := launch(t, 4, os.Args[0], "abort", 60*time.Second)
	if run.code != 7 {
		t.Errorf("mpirun exited %d, want the code 7 that rank 1 aborted with:\n%s", run.code, run.out)
	}
	t.Logf("mpirun exited %d after %v", run.code, run.elapsed.Round(time.Millisecond))
}

// A build without MPI, started by mpirun, must say so on every rank.
func TestMPIBuildWithoutMPI(t *testing.T) {
	mpirun(t)
	bin := filepath.Join(t.TempDir(), "ranks-nompi.test")
	gocmd, err := exec.LookPath("go")
	if err != nil {
		gocmd = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	build := exec.Command(gocmd, "test", "-c", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go test -c: %v\n%s", err, out)
	}
	run := launch(t, 2, bin, "exercise", 60*time.Second)
	const want = "mct was built without MPI (CGO_ENABLED=0); rebuild with make build\n"
	if run.code == 0 || strings.Count(run.out, want) != 2 {
		t.Errorf("exit %d, want non-zero and %q from both ranks in:\n%s", run.code, want, run.out)
	}
}

// onMPIThread checks that the threads in tids are the one making MPI calls under
// MCT_MPI_FUNNELED=1 (the MPI thread), and that the setting took effect.
func onMPIThread(tids []int) error {
	mpi.mu.Lock()
	direct := mpi.direct
	mpi.mu.Unlock()
	if funneled := os.Getenv("MCT_MPI_FUNNELED") == "1"; funneled == direct {
		return fmt.Errorf("MCT_MPI_FUNNELED=%v, yet MPI calls made by the caller itself: %v", funneled, direct)
	}
	if direct {
		return nil
	}
	var mpiThread int
	call(func() { mpiThread = syscall.Gettid() })
	for _, tid := range tids {
		if tid != mpiThread {
			return fmt.Errorf("around ran on thread %d, the MPI calls on thread %d", tid, mpiThread)
		}
	}
	return nil
}
