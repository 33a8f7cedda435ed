package ranks

import (
	"strings"
	"testing"
)

// clearLaunchEnv hides whatever launcher started the test itself.
func clearLaunchEnv(t *testing.T) {
	t.Helper()
	for _, v := range []string{"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK",
		"SLURM_STEP_ID", "SLURM_STEP_NUM_TASKS", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
		"MPI_LOCALRANKID", "MPI_LOCALNRANKS", "PMIX_LOCAL_RANK", "PMIX_LOCAL_SIZE", "SLURM_LOCALID"} {
		t.Setenv(v, "")
	}
}

func TestLaunched(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OMPI_COMM_WORLD_SIZE": "4"}, true},
		{map[string]string{"PMIX_RANK": "0"}, true},
		{map[string]string{"PMI_SIZE": "2"}, true},
		{map[string]string{"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "4"}, true},
		{map[string]string{"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "1"}, false},
		// An sbatch script outside srun: the job has tasks but this is no step of them.
		{map[string]string{"SLURM_STEP_NUM_TASKS": "4"}, false},
	} {
		clearLaunchEnv(t)
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		if got := Launched(); got != tc.want {
			t.Errorf("Launched() with %v = %v, want %v", tc.env, got, tc.want)
		}
	}
}

func TestLocalRankFromEnvironment(t *testing.T) {
	clearLaunchEnv(t)
	if LocalRank() != 0 || LocalSize() != 1 {
		t.Errorf("unlaunched: LocalRank %d LocalSize %d, want 0 and 1", LocalRank(), LocalSize())
	}
	t.Setenv("SLURM_LOCALID", "3")
	if LocalRank() != 3 {
		t.Errorf("SLURM_LOCALID=3: LocalRank %d", LocalRank())
	}
	t.Setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1")
	t.Setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2")
	if LocalRank() != 1 || LocalSize() != 2 {
		t.Errorf("Open MPI variables: LocalRank %d LocalSize %d, want 1 and 2", LocalRank(), LocalSize())
	}
}

func TestWorldOutsideLauncher(t *testing.T) {
	clearLaunchEnv(t)
	_, err := World()
	if err == nil || !strings.Contains(err.Error(), "ranks.RunLocal") {
		t.Errorf("World() outside a launcher: %v, want advice to use RunLocal", err)
	}
}

func TestWorldSrunWithoutPMI(t *testing.T) {
	clearLaunchEnv(t)
	t.Setenv("SLURM_STEP_ID", "0")
	t.Setenv("SLURM_STEP_NUM_TASKS", "4")
	_, err := World()
	if err == nil {
		t.Fatal("World() under srun without PMI succeeded")
	}
	// A build with MPI explains the missing plugin; one without says that first.
	if msg := err.Error(); !strings.HasPrefix(msg, "srun started 4 tasks without an MPI plugin") &&
		!strings.HasPrefix(msg, "mct was built without MPI") {
		t.Errorf("World() = %v", err)
	}
}
