package sweep

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"mct/internal/atomicfile"
)

// ErrPreempted is returned by Run when the trainer stopped before finishing
// (it was sent SIGUSR1 or SIGTERM, and exited 0 without writing summary.json,
// after a committed checkpoint or, during the view build, before training).
// Running the same combination again resumes it.
// `mct sweep run` exits with ExitPreempted for it.
var ErrPreempted = errors.New("stopped by a signal before finishing")

// ExitPreempted is the exit status of `mct sweep run` for ErrPreempted
// (EX_TEMPFAIL of sysexits.h: try again later). jobs/slurm/sweep.sbatch
// requeues the array task when it sees it after SLURM's warning signal.
const ExitPreempted = 75

// RunsDir is the directory, beside the grid file, that holds one run
// directory per combination.
const RunsDir = "runs"

// Run runs combination index of the grid idempotently: a combination whose
// summary.json exists is left alone while the grid gives it the flags it
// finished with (runs/.<name>.flags records them); one whose run directory
// has content (or whose flags changed since it finished) is resumed
// (--resume), and the trainer refuses a run directory of another
// configuration; otherwise it starts. The trainer is
//
//	self train <fixed and varied flags> --out <grid dir>/runs/<name> [--resume]
//
// run in the grid's directory, through mpirun or srun when the grid has
// ranks > 1. SIGUSR1 and SIGTERM sent to this process are passed on to the
// trainer as SIGUSR1 (launchers forward it to every rank, and the trainer
// checkpoints and exits 0); Run then returns ErrPreempted. A lock file beside
// the run directory keeps two processes from running one combination.
func Run(gridPath string, index int, self string) error {
	g, err := Load(gridPath)
	if err != nil {
		return err
	}
	combos, err := g.Combos()
	if err != nil {
		return err
	}
	if index < 0 || index >= len(combos) {
		return fmt.Errorf("sweep run: index %d out of range: grid %s has %d combinations (0..%d)", index, g.Path, len(combos), len(combos)-1)
	}
	c := combos[index]
	if err := checkTasks(g.Ranks); err != nil {
		return err
	}
	runs := filepath.Join(g.Dir, RunsDir)
	if err := os.MkdirAll(runs, 0o755); err != nil {
		return fmt.Errorf("sweep run: %w", err)
	}
	unlock, err := lock(filepath.Join(runs, "."+c.Name+".lock"), c.Name)
	if err != nil {
		return err
	}
	defer unlock()

	out := filepath.Join(runs, c.Name)
	flagsFile := filepath.Join(runs, "."+c.Name+".flags")
	ran := ranWith(g.Ranks, c.Args())
	wasFinished := finished(out)
	if wasFinished {
		old, err := os.ReadFile(flagsFile)
		if err != nil || string(old) == ran { // no record: finished before records were kept
			slog.Info("sweep: combination already finished", "index", index, "run", out)
			return nil
		}
		// The grid changed since (or another grid in this directory has a combination
		// of this name): the trainer judges whether its run directory holds this
		// configuration (it refuses another one) and then resumes it to the end.
		slog.Info("sweep: the grid gives this finished combination other flags than it ran with", "index", index, "run", out, "record", flagsFile)
	}
	args := append([]string{"train"}, c.Args()...)
	args = append(args, "--out="+out)
	resume := hasContent(out)
	if resume {
		args = append(args, "--resume")
	}
	argv := g.launch(self, args)
	slog.Info("sweep: running combination", "index", index, "of", len(combos), "run", out, "resume", resume, "command", argv)

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = g.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	stop := make(chan os.Signal, 2)
	signal.Notify(stop, syscall.SIGUSR1, syscall.SIGTERM)
	defer signal.Stop(stop)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("sweep run: start %s: %w", argv[0], err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	for waiting := true; waiting; {
		select {
		case sig := <-stop:
			slog.Info("sweep: asking the trainer to checkpoint and stop", "signal", sig.String())
			stopped = true
			// Launchers forward SIGUSR1 to every rank, while SIGTERM makes
			// mpirun kill the ranks; the trainer treats both alike.
			_ = cmd.Process.Signal(syscall.SIGUSR1)
		case err = <-done:
			waiting = false
		}
	}
	// A run that had finished before this trainer started is this trainer's only if it
	// succeeded (it refuses a run directory of another configuration).
	if finished(out) && (err == nil || !wasFinished) {
		if err != nil {
			slog.Warn("sweep: trainer exited with an error after writing its summary", "err", err)
		}
		if werr := atomicfile.WriteFile(flagsFile, []byte(ran)); werr != nil {
			return fmt.Errorf("sweep run: combination %d (%s) finished, but: %w", index, c.Name, werr)
		}
		return nil
	}
	// Exit 0 without a summary is the trainer's word that it stopped at a
	// checkpoint, whoever signalled it (SLURM signals every process of a
	// job on scancel or pre-emption, not only this one). A trainer killed by
	// the SIGUSR1 we sent, before it could handle it, also left only
	// committed checkpoints behind.
	if err == nil || stopped && killedBy(err, syscall.SIGUSR1) {
		return fmt.Errorf("sweep run: combination %d (%s): %w; run the same command again to resume", index, c.Name, ErrPreempted)
	}
	return fmt.Errorf("sweep run: combination %d (%s): %s: %w", index, c.Name, argv[0], err)
}

// ranWith is what the record beside a finished run directory holds: the flags and the
// number of ranks its trainer ran with, one per line.
func ranWith(ranks int, args []string) string {
	return strings.Join(append([]string{"ranks=" + strconv.Itoa(ranks)}, args...), "\n") + "\n"
}

// launch returns the command line that starts the trainer with g.Ranks
// processes.
func (g *Grid) launch(self string, args []string) []string {
	if g.Ranks == 1 {
		return append([]string{self}, args...)
	}
	var argv []string
	switch g.Launcher {
	case "srun":
		argv = []string{"srun", "--ntasks=" + strconv.Itoa(g.Ranks)}
	default:
		argv = []string{"mpirun", "-np", strconv.Itoa(g.Ranks)}
	}
	argv = append(argv, g.LauncherArgs...)
	return append(append(argv, self), args...)
}

// checkTasks refuses to start more ranks than the SLURM job was given, which
// would otherwise fail inside mpirun with a message about slots.
func checkTasks(ranks int) error {
	s := os.Getenv("SLURM_NTASKS")
	if s == "" {
		return nil
	}
	n, err := strconv.Atoi(s)
	if err == nil && n < ranks {
		return fmt.Errorf("sweep run: the grid asks for ranks=%d but this SLURM job has SLURM_NTASKS=%d: submit it with --ntasks=%d", ranks, n, ranks)
	}
	return nil
}

func finished(runDir string) bool {
	_, err := os.Stat(filepath.Join(runDir, SummaryFile))
	return err == nil
}

func hasContent(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) > 0
}

func killedBy(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// lock takes an exclusive advisory lock on path for the life of the process
// that holds it; the kernel drops it if the process dies. Filesystems that
// do not offer flock (Lustre mounted without -o flock) get a warning and no
// lock, rather than a sweep that cannot run at all.
func lock(path, name string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("sweep run: %w", err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	switch {
	case err == nil:
		return func() { f.Close() }, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		f.Close()
		return nil, fmt.Errorf("sweep run: combination %s is being run by another process (lock %s is held)", name, path)
	default:
		f.Close()
		slog.Warn("sweep: running without a lock: the filesystem refuses flock", "lock", path, "err", err)
		return func() {}, nil
	}
}
