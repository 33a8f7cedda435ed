package ranks

import (
	"errors"
	"fmt"
	"os"
	"strconv"
)

// launcherVars are set by MPI launchers in every process they start: Open MPI's
// mpirun (OMPI_*), PMIx launchers such as Open MPI 5's prterun and
// srun --mpi=pmix (PMIX_*), and PMI-1/PMI-2 launchers such as MPICH's Hydra,
// Intel MPI and srun --mpi=pmi2 (PMI_*).
var launcherVars = []string{"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"}

// Launched reports whether this process was started by an MPI launcher
// (mpirun, mpiexec, srun) and should therefore join an MPI world rather than
// run its ranks locally. A multi-task srun step without an MPI plugin counts
// too, so that World can say what is wrong instead of every task silently
// training alone.
func Launched() bool {
	for _, v := range launcherVars {
		if os.Getenv(v) != "" {
			return true
		}
	}
	return srunTasks() > 1
}

// srunTasks is the number of tasks of the current srun step, 0 outside one.
// Inside an sbatch script but outside srun there is no step of several tasks.
func srunTasks() int {
	if os.Getenv("SLURM_STEP_ID") == "" {
		return 0
	}
	n, err := strconv.Atoi(os.Getenv("SLURM_STEP_NUM_TASKS"))
	if err != nil {
		return 0
	}
	return n
}

// errNoPMI is returned by World for an srun step that has no way to wire
// its tasks together: MPI_Init would make each task a world of one.
func errNoPMI() error {
	return fmt.Errorf("srun started %d tasks without an MPI plugin (no PMI or PMIx in the environment): run srun --mpi=pmix (srun --mpi=list shows the choices) or mpirun", srunTasks())
}

// LocalRank is this process's index among the ranks on its node, for
// choosing a GPU. Once World has succeeded it is MPI's own answer
// (MPI_Comm_split_type with MPI_COMM_TYPE_SHARED); before, it is the
// launcher's (OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID, SLURM_LOCALID); 0
// when not launched.
func LocalRank() int {
	if r, _, ok := mpiNode(); ok {
		return r
	}
	return envInt(0, "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMIX_LOCAL_RANK", "SLURM_LOCALID")
}

// LocalSize is the number of ranks on this process's node, found like
// LocalRank; 1 when not launched.
func LocalSize() int {
	if _, n, ok := mpiNode(); ok {
		return n
	}
	return envInt(1, "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PMIX_LOCAL_SIZE")
}

// envInt is the first of vars that holds a non-negative integer, else def.
func envInt(def int, vars ...string) int {
	for _, v := range vars {
		if n, err := strconv.Atoi(os.Getenv(v)); err == nil && n >= 0 {
			return n
		}
	}
	return def
}

// errNotLaunched is World's answer outside an MPI launcher.
var errNotLaunched = errors.New("not started by mpirun or srun: run the ranks in one process with ranks.RunLocal, or launch with mpirun -np N")
