package sweep

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// These tests run the batch scripts of jobs/slurm with bash, outside SLURM:
// SLURM's variables are set by hand and scontrol is a stub that records its
// arguments, so every branch of the pre-emption logic is checked in seconds.
// TestSLURMArrayAndRequeue runs them under a real slurmctld.

type script struct {
	t           *testing.T
	path        string
	env         []string
	scontrolLog string // file where the stub records its calls
}

func newScript(t *testing.T, name string, env ...string) *script {
	t.Helper()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	stub := t.TempDir()
	log := filepath.Join(stub, "calls")
	if err := os.WriteFile(filepath.Join(stub, "scontrol"), []byte("#!/bin/sh\necho \"$@\" >>"+log+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	base := append(os.Environ(), "PATH="+stub+":"+os.Getenv("PATH"), "MCT="+fakeMCT(t), "SLURM_JOB_ID=42", "SLURM_NTASKS=", "SLURM_RESTART_COUNT=")
	return &script{t: t, path: filepath.Join(repo, "jobs/slurm", name), env: append(base, env...), scontrolLog: log}
}

// run runs the script; with signal non-nil it sends that signal to bash
// once ready reports true. It returns the exit status and the output.
func (s *script) run(signal os.Signal, ready func() bool, extraEnv []string, args ...string) (int, string) {
	s.t.Helper()
	cmd := exec.Command("bash", append([]string{s.path}, args...)...)
	cmd.Env = append(append([]string(nil), s.env...), extraEnv...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	if signal != nil {
		waitFor(s.t, ready)
		if err := cmd.Process.Signal(signal); err != nil {
			s.t.Fatal(err)
		}
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return 0, out.String()
}

func (s *script) calls() string {
	b, _ := os.ReadFile(s.scontrolLog)
	return strings.TrimSpace(string(b))
}

func exists(p string) func() bool {
	return func() bool { _, err := os.Stat(p); return err == nil }
}

func TestSweepScript(t *testing.T) {
	grid := writeGrid(t, `{"fixed": {"views": ["hog", "gabor"], "steps": 300, "step-ms": 5}}`)
	out := filepath.Join(filepath.Dir(grid), RunsDir, "run")
	s := newScript(t, "sweep.sbatch", "SLURM_ARRAY_TASK_ID=0")

	// SIGTERM (scancel): mct checkpoints, the task is not requeued.
	code, log := s.run(syscall.SIGTERM, exists(filepath.Join(out, "ckpt")), nil, grid)
	if code != 1 || s.calls() != "" || !strings.Contains(log, "not requeued") {
		t.Fatalf("TERM: exit %d, scontrol %q\n%s", code, s.calls(), log)
	}
	// USR1 (the time-limit warning): checkpoint and requeue this job.
	code, log = s.run(syscall.SIGUSR1, exists(filepath.Join(out, "resumed.rank0")), nil, grid)
	if code != 0 || s.calls() != "requeue 42" {
		t.Fatalf("USR1: exit %d, scontrol %q\n%s", code, s.calls(), log)
	}
	// Past MCT_MAX_REQUEUES the task stops requeueing itself.
	code, log = s.run(syscall.SIGUSR1, func() bool {
		b, _ := os.ReadFile(filepath.Join(out, "resumed.rank0"))
		return strings.Count(string(b), "\n") == 2
	}, []string{"SLURM_RESTART_COUNT=3", "MCT_MAX_REQUEUES=3"}, grid)
	if code != 1 || s.calls() != "requeue 42" || !strings.Contains(log, "requeued 3 times") {
		t.Fatalf("max requeues: exit %d, scontrol %q\n%s", code, s.calls(), log)
	}
	// The requeued task resumes and finishes; run again, it returns at once.
	for i := 0; i < 2; i++ {
		code, log = s.run(nil, nil, []string{"SLURM_RESTART_COUNT=1"}, grid)
		if code != 0 || !strings.Contains(log, "task 0 finished") || !finished(out) {
			t.Fatalf("resume %d: exit %d\n%s", i, code, log)
		}
	}
	if !strings.Contains(log, "already finished") {
		t.Errorf("second run did not see the finished combination:\n%s", log)
	}
	// A failing trainer fails the task with its status, without requeue.
	bad := writeGrid(t, `{"fixed": {"no-such-flag": 1}}`)
	if code, log = s.run(nil, nil, nil, bad); code != 1 || !strings.Contains(log, "failed (mct exit 1)") || s.calls() != "requeue 42" {
		t.Errorf("failing trainer: exit %d\n%s", code, log)
	}
}

func TestRunScript(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	s := newScript(t, "run.sbatch", "MCT_OUT="+out, "MCT_LAUNCHER=none")
	args := []string{"--views=hog,gabor", "--steps=300", "--step-ms=5"}

	code, log := s.run(syscall.SIGUSR1, exists(filepath.Join(out, "ckpt")), nil, args...)
	if code != 0 || s.calls() != "requeue 42" || finished(out) {
		t.Fatalf("USR1: exit %d, scontrol %q\n%s", code, s.calls(), log)
	}
	code, log = s.run(nil, nil, []string{"SLURM_RESTART_COUNT=1"}, args...)
	if code != 0 || !strings.Contains(log, "--resume") || !strings.Contains(log, "resumed at step") || !finished(out) {
		t.Fatalf("resume: exit %d\n%s", code, log)
	}
	code, log = s.run(nil, nil, nil, args...)
	if code != 0 || !strings.Contains(log, "the run finished, nothing to do") {
		t.Errorf("finished run: exit %d\n%s", code, log)
	}
	// SIGTERM: checkpoint, no requeue, a non-zero exit.
	out2 := filepath.Join(t.TempDir(), "run")
	s2 := newScript(t, "run.sbatch", "MCT_OUT="+out2, "MCT_LAUNCHER=none")
	code, log = s2.run(syscall.SIGTERM, exists(filepath.Join(out2, "ckpt")), nil, args...)
	if code != 1 || s2.calls() != "" || !strings.Contains(log, "not requeued") {
		t.Errorf("TERM: exit %d, scontrol %q\n%s", code, s2.calls(), log)
	}
	s3 := newScript(t, "run.sbatch", "MCT_OUT="+out2, "MCT_LAUNCHER=aprun")
	if code, log = s3.run(nil, nil, nil, args...); code != 2 || !strings.Contains(log, "MCT_LAUNCHER=aprun: want mpirun, srun or none") {
		t.Errorf("bad launcher: exit %d\n%s", code, log)
	}
}
