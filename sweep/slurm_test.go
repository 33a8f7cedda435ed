package sweep

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The SLURM test runs the job scripts of jobs/slurm on a one-node cluster
// started by jobs/slurm/testcluster.sh. It runs only with MCT_SLURM_TEST=1
// (as root, with slurm-wlm, munge and Open MPI installed), and then fails,
// never skips, when something is missing.
//
// MCT_BIN names the mct binary (absolute or relative to the repository root);
// without it the test uses testdata/fakemct. MCT_SLURM_FIXED and
// MCT_SLURM_FIXED_LONG are the grids' "fixed" train flags (JSON objects) for
// the short runs of the array and for the run that is pre-empted (it must
// run for at least ~10 s); the defaults suit fakemct. With ./mct these passed
// in 59 s on 2 cores, once the view cache was warm (cold, all four array
// tasks build the same views at once and the test runs out of time):
//
//	MCT_SLURM_FIXED='{"views":["hog","gabor"],"labeled":0.01,"epochs":1,"warmup-epochs":1,"hidden":[64,64],"val":1000,"batch":4096}'
//	MCT_SLURM_FIXED_LONG='{"views":["hog","gabor"],"labeled":0.01,"epochs":1,"warmup-epochs":2,"hidden":[64,64],"val":1000,"batch":256,"checkpoint-every":10}'
//
// MCT_SLURM_TIMEOUT (seconds, default 150) bounds the whole test.
const (
	defaultFixed     = `{"views": ["hog", "gabor"], "steps": 8, "step-ms": 30}`
	defaultFixedLong = `{"views": ["hog", "gabor"], "steps": 200, "step-ms": 60}`
)

type cluster struct {
	t        *testing.T
	dir      string // the cluster's state, config and logs
	repo     string
	env      []string
	deadline time.Time
}

func TestSLURMArrayAndRequeue(t *testing.T) {
	if os.Getenv("MCT_SLURM_TEST") != "1" {
		t.Skip("set MCT_SLURM_TEST=1 to run the SLURM job scripts on a local one-node cluster (needs root, slurm-wlm, munge, openmpi-bin)")
	}
	c := startCluster(t)
	fixed := envOr("MCT_SLURM_FIXED", defaultFixed)
	fixedLong := envOr("MCT_SLURM_FIXED_LONG", defaultFixedLong)

	// A 4-task array of 2-rank runs.
	grid := c.grid("array", fmt.Sprintf(`{"ranks": 2, "fixed": %s, "vary": {"algo": ["supervised", "mct"], "seed": [1, 2]}}`, fixed))
	combos, err := Expand(grid)
	if err != nil {
		t.Fatal(err)
	}
	array := c.submit(filepath.Dir(grid), nil, "--array=0-3", "--ntasks=2", filepath.Join(c.repo, "jobs/slurm/sweep.sbatch"), grid)
	c.waitGone(array)
	for _, rec := range c.show(array) {
		if rec["JobState"] != "COMPLETED" || rec["ExitCode"] != "0:0" {
			t.Errorf("array task %s_%s: %s, exit %s", rec["ArrayJobId"], rec["ArrayTaskId"], rec["JobState"], rec["ExitCode"])
		}
	}
	col, err := Collect(grid)
	if err != nil {
		t.Fatal(err)
	}
	if len(col.Unfinished) != 0 || len(col.Table.Groups) != 2 {
		t.Fatalf("collected %d groups, unfinished %v:\n%s", len(col.Table.Groups), col.Unfinished, col.Markdown)
	}
	for _, g := range col.Table.Groups {
		var sum float64
		for _, r := range g.Runs {
			sum += r.Summary.TestAccuracy.Ensemble
		}
		if len(g.Runs) != 2 || abs(g.Test.Mean-sum/2) > 1e-12 || len(g.Runs[0].Summary.ParamChecksum) != 2 {
			t.Errorf("group %s: %d runs, mean %v, want 2 runs of mean %v with 2 checksums", g.Algo, len(g.Runs), g.Test.Mean, sum/2)
		}
	}
	for _, f := range col.Files {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("collect output %s: %v", f, err)
		}
	}
	if len(combos) != 4 {
		t.Errorf("%d combinations", len(combos))
	}

	// Pre-emption: the same long run three times at once, uninterrupted,
	// as a sweep task that gets the warning signal, and as run.sbatch that
	// gets it; both must requeue, resume and end where the first ends.
	long := fmt.Sprintf(`{"ranks": 2, "fixed": %s}`, fixedLong)
	refGrid, sweepGrid := c.grid("ref", long), c.grid("preempt-sweep", long)
	runOut := filepath.Join(c.mkdir("preempt-run"), "run")
	lc, err := Expand(refGrid)
	if err != nil {
		t.Fatal(err)
	}
	sbatchSweep := filepath.Join(c.repo, "jobs/slurm/sweep.sbatch")
	ref := c.submit(filepath.Dir(refGrid), nil, "--array=0-0", "--ntasks=2", sbatchSweep, refGrid)
	pre := c.submit(filepath.Dir(sweepGrid), nil, "--array=0-0", "--ntasks=2", sbatchSweep, sweepGrid) + "_0"
	preRun := c.submit(filepath.Dir(runOut), []string{"MCT_OUT=" + runOut}, append([]string{"--ntasks=2",
		filepath.Join(c.repo, "jobs/slurm/run.sbatch")}, lc[0].Args()...)...)
	sweepOut := filepath.Join(filepath.Dir(sweepGrid), RunsDir, "run")
	c.waitFor("the pre-empted runs to start", func() bool { return hasContent(sweepOut) && hasContent(runOut) })
	time.Sleep(2 * time.Second)
	for _, id := range []string{pre, preRun} {
		c.slurm("scancel", "--signal=USR1", "--batch", id)
	}
	// SLURM holds a requeued job back for about two minutes; an
	// administrator may let it go sooner, but not within the second its
	// old credential was revoked (slurmd would refuse to launch it).
	for _, id := range []string{pre, preRun} {
		c.waitFor("job "+id+" to be requeued", func() bool {
			r := c.show(id)[0]
			return r["Restarts"] != "0" && r["JobState"] == "PENDING"
		})
	}
	time.Sleep(2 * time.Second)
	for _, id := range []string{pre, preRun} {
		c.slurm("scontrol", "update", "JobId="+id, "StartTime=now")
	}
	c.waitGone(ref)
	c.waitGone(pre)
	c.waitGone(preRun)
	want, err := ReadResult(filepath.Join(filepath.Dir(refGrid), RunsDir, "run"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id, out, logDir string
		told            []string // besides the checkpoint and the requeue
	}{
		// sweep.Run's log line, and mct sweep run's line for its exit status 75
		{pre, sweepOut, filepath.Dir(sweepGrid), []string{"resume=true", ErrPreempted.Error() + "; run the same command again to resume"}},
		{preRun, runOut, filepath.Dir(runOut), []string{"--resume"}}, // run.sbatch's echo of the command
	} {
		logs, _ := filepath.Glob(filepath.Join(tc.logDir, "slurm-*.out"))
		var log []byte
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			log = append(log, b...)
		}
		for _, want := range append([]string{"checkpoint", "requeueing job", "restart 1"}, tc.told...) {
			if !strings.Contains(string(log), want) {
				t.Errorf("job %s: log lacks %q", tc.id, want)
			}
		}
		rec := c.show(tc.id)[0]
		if rec["JobState"] != "COMPLETED" || rec["ExitCode"] != "0:0" || rec["Restarts"] != "1" {
			t.Errorf("job %s: %s, exit %s, %s restarts; want COMPLETED, 0:0, 1", tc.id, rec["JobState"], rec["ExitCode"], rec["Restarts"])
		}
		got, err := ReadResult(tc.out)
		if err != nil {
			t.Errorf("job %s: %v", tc.id, err)
			continue
		}
		for v, sum := range want.Summary.ParamChecksum {
			if got.Summary.ParamChecksum[v] != sum {
				t.Errorf("job %s view %s: checksum %s after requeue, %s uninterrupted", tc.id, v, got.Summary.ParamChecksum[v], sum)
			}
		}
		if os.Getenv("MCT_BIN") != "" {
			continue
		}
		// fakemct records where each rank resumed.
		for r := 0; r < 2; r++ {
			b, err := os.ReadFile(filepath.Join(tc.out, fmt.Sprintf("resumed.rank%d", r)))
			step, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || step <= 0 {
				t.Errorf("job %s rank %d did not resume from a checkpoint: %v %q", tc.id, r, err, b)
			}
		}
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("MCT_SLURM_TEST=1 needs root: slurmd starts jobs as their users")
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := os.Getenv("MCT_BIN")
	if bin == "" {
		bin = fakeMCT(t)
	} else if !filepath.IsAbs(bin) {
		bin = filepath.Join(repo, bin)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("MCT_BIN: %v", err)
	}
	timeout, err := strconv.Atoi(envOr("MCT_SLURM_TIMEOUT", "150"))
	if err != nil || timeout <= 0 {
		t.Fatalf("MCT_SLURM_TIMEOUT=%q: want a number of seconds", os.Getenv("MCT_SLURM_TIMEOUT"))
	}
	// munged needs every directory above its socket to be searchable by
	// its user, which t.TempDir's are not.
	dir, err := os.MkdirTemp("", "mct-slurm-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePortPair(t)
	c := &cluster{t: t, dir: dir, repo: repo, deadline: time.Now().Add(time.Duration(timeout) * time.Second)}
	c.env = append(os.Environ(),
		"SLURM_CONF="+filepath.Join(dir, "cluster", "slurm.conf"),
		"MCT="+bin,
		"MCT_SLURM_PORT="+strconv.Itoa(port),
		"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
		"PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin",
	)
	script := filepath.Join(repo, "jobs/slurm/testcluster.sh")
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
		cmd := exec.Command(script, "stop", filepath.Join(dir, "cluster"))
		cmd.Env = c.env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("testcluster.sh stop: %v\n%s", err, out)
		}
		os.RemoveAll(dir)
	})
	cmd := exec.Command(script, "start", filepath.Join(dir, "cluster"))
	cmd.Env = c.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testcluster.sh start: %v\n%s", err, out)
	}
	return c
}

// freePortPair finds p such that p and p+1 (slurmctld's and slurmd's ports)
// are free, so the test does not collide with a cluster already running.
func freePortPair(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", ":"+strconv.Itoa(p+1))
		l.Close()
		if err == nil {
			l2.Close()
			return p
		}
	}
	t.Fatal("no two free consecutive TCP ports")
	return 0
}

func (c *cluster) mkdir(name string) string {
	d := filepath.Join(c.dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		c.t.Fatal(err)
	}
	return d
}

func (c *cluster) grid(name, body string) string {
	p := filepath.Join(c.mkdir(name), "grid.json")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// slurm runs a SLURM client command against the test cluster.
func (c *cluster) slurm(name string, args ...string) string {
	c.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// submit runs sbatch in dir with extra environment and returns the job id.
func (c *cluster) submit(dir string, env []string, args ...string) string {
	c.t.Helper()
	base := []string{"--parsable", "--chdir=" + dir, "--output=" + filepath.Join(dir, "slurm-%A_%a.out"), "--time=5"}
	cmd := exec.Command("sbatch", append(base, args...)...)
	cmd.Env = append(append([]string(nil), c.env...), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("sbatch %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// show returns the records of `scontrol show job id`, one per array task.
func (c *cluster) show(id string) []map[string]string {
	c.t.Helper()
	var recs []map[string]string
	for _, block := range strings.Split(c.slurm("scontrol", "show", "job", id), "\n\n") {
		rec := map[string]string{}
		for _, f := range strings.Fields(block) {
			if k, v, ok := strings.Cut(f, "="); ok {
				if _, seen := rec[k]; !seen {
					rec[k] = v
				}
			}
		}
		if rec["JobId"] != "" {
			recs = append(recs, rec)
		}
	}
	if len(recs) == 0 {
		c.t.Fatalf("scontrol show job %s: no record", id)
	}
	return recs
}

func (c *cluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	for !cond() {
		if time.Now().After(c.deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitGone waits until no task of the job is pending, running or completing.
func (c *cluster) waitGone(id string) {
	c.t.Helper()
	c.waitFor("job "+id+" to end", func() bool {
		for _, r := range c.show(id) {
			switch r["JobState"] {
			case "PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "REQUEUED", "SUSPENDED":
				return false
			}
		}
		return true
	})
}

// dumpLogs shows the job logs and the daemons' last lines after a failure.
func (c *cluster) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(c.dir, "*", "slurm-*.out"))
	logs = append(logs, filepath.Join(c.dir, "cluster", "log", "slurmctld.log"), filepath.Join(c.dir, "cluster", "log", "slurmd.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		c.t.Logf("==> %s\n%s", l, strings.Join(lines, "\n"))
	}
}
