package train

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"mct/blas"
	"mct/nn"
	"mct/probe"
	"mct/ranks"
)

// Opener makes the compute backend of one rank: localRank of localSize ranks sharing this
// node (the local transport's ranks share one process).
type Opener func(localRank, localSize int, precision string) (nn.Backend, error)

var (
	devicesMu sync.Mutex
	devices   = map[string]Opener{
		"cpu": func(int, int, string) (nn.Backend, error) { return nn.NewCPU(), nil },
	}
)

// RegisterDevice adds a --device choice; the cuda build registers "cuda" (cmd_cuda.go), so
// the default build never links the CUDA driver.
func RegisterDevice(name string, open Opener) {
	devicesMu.Lock()
	defer devicesMu.Unlock()
	devices[name] = open
}

// rankDevice opens this rank's compute backend (the GPU its node-local rank is placed
// on, or the CPU) and sizes the BLAS threads; collective, so all ranks fail together.
// note, for rank 0 to print, says why --device auto runs on the CPU when GPUs were there
// to use, or, under mpirun, what is unusual in rank 0's node's GPU placement ("" otherwise).
func rankDevice(cfg Config, world ranks.Comm, layout ranks.Layout, transport string) (be nn.Backend, note string, err error) {
	localRank, localSize := world.Rank(), world.Size()
	if transport == "mpi" {
		localRank, localSize = ranks.LocalRank(), ranks.LocalSize()
	}
	be, note, err = openDevice(cfg.Device, localRank, localSize, cfg.Precision)
	if !r0OK(world, err) { // Run names the failing rank (under mpirun) or the transport does
		return nil, "", orOther(err)
	}
	if note == "" && world.Rank() == 0 {
		note = idleGPUs(cfg.Device, be, probe.Inventory)
	}
	if note == "" && world.Rank() == 0 && transport == "mpi" {
		note = placementNote(be, localRank, localSize, probe.Inventory)
	}
	blas.SetThreads(blasThreads(transport, layout))
	return be, note, nil
}

// checkDevice reports whether --device names a device this binary has: auto, or one
// registered (cpu; cuda in a make cuda build).
func checkDevice(name string) error {
	devicesMu.Lock()
	_, ok := devices[name]
	_, hasCUDA := devices["cuda"]
	names := slices.Sorted(maps.Keys(devices))
	devicesMu.Unlock()
	if !hasCUDA {
		names = append(names, "cuda (make cuda)")
	}
	switch {
	case ok || name == "auto":
		return nil
	case name == "cuda":
		return fmt.Errorf("--device cuda: this mct was built without CUDA: build ./mct-cuda with make cuda")
	}
	return fmt.Errorf("--device %q: expected auto or one of %s", name, strings.Join(names, ", "))
}

// openDevice resolves --device: "auto" takes cuda when this binary has it and a GPU opens,
// else the CPU, with a note when the GPU did not open.
func openDevice(name string, localRank, localSize int, precision string) (nn.Backend, string, error) {
	if err := checkDevice(name); err != nil {
		return nil, "", err
	}
	devicesMu.Lock()
	open := devices[name]
	cuda, hasCUDA := devices["cuda"]
	devicesMu.Unlock()
	switch {
	case name == "auto" && hasCUDA:
		b, err := cuda(localRank, localSize, precision)
		if err == nil {
			return b, "", nil
		}
		return nn.NewCPU(), fmt.Sprintf("note: --device auto runs on the CPU: the GPU did not open (%v); --device cuda makes that an error", err), nil
	case name == "auto":
		return nn.NewCPU(), "", nil
	}
	b, err := open(localRank, localSize, precision)
	return b, "", err
}

// idleGPUs is a note for rank 0 when --device auto settled on the CPU because this mct
// was built without CUDA while the node has GPUs (inventory: probe.Inventory, NVML) that
// the run leaves idle; "" otherwise.
func idleGPUs(device string, be nn.Backend, inventory func() (probe.Report, error)) string {
	devicesMu.Lock()
	_, hasCUDA := devices["cuda"]
	devicesMu.Unlock()
	if device != "auto" || hasCUDA || be.Name() != "cpu" {
		return ""
	}
	rep, err := inventory()
	if err != nil {
		return ""
	}
	gpus, _ := rep.Visible()
	if len(gpus) == 0 {
		return ""
	}
	return fmt.Sprintf("note: this node has %d GPU(s) (%s) that this mct, built without CUDA, leaves idle: build ./mct-cuda (make cuda) and run it instead",
		len(gpus), gpus[0].Name)
}

// placementNote is one line with the notes of a GPU rank's placement (probe.Plan: local
// ranks sharing its GPU, visible GPUs that get no rank, GPUs of mixed models), so that a
// user who launched more or fewer ranks than the node has GPUs sees it; "" when there is
// nothing to say or be is not a GPU. Only for ranks launched by mpirun: views of one
// process share their GPU by design.
func placementNote(be nn.Backend, localRank, localSize int, inventory func() (probe.Report, error)) string {
	if !strings.HasPrefix(be.Name(), "cuda") {
		return ""
	}
	rep, err := inventory()
	if err != nil {
		return ""
	}
	pl, err := probe.Plan(localRank, localSize, rep)
	if err != nil || len(pl.Notes) == 0 {
		return ""
	}
	return "note: GPU placement on this node: " + strings.Join(pl.Notes, "; ")
}
