// Package probe answers "what can this node run, and where does each rank
// go?": it lists the node's NVIDIA GPUs through NVML and plans which GPU each
// local MPI rank uses. It backs the `mct probe [--json]` command and the GPU
// choice of a `cuda` build at start-up.
//
// NVML (libnvidia-ml.so.1) is opened at run time by github.com/NVIDIA/go-nvml,
// so the default build links nothing from NVIDIA: on a machine without a
// driver Inventory still succeeds and says why no GPU is listed. A
// CGO_ENABLED=0 build cannot open NVML at all and reports that instead.
//
// Typical use at start-up of rank r of n on a node:
//
//	rep, err := probe.Inventory()
//	if err != nil { ... }               // NVML answered but a query failed
//	rep.MPI = probe.MPI{...}            // filled by the caller from mct/ranks
//	pl, err := probe.Plan(localRank, localSize, rep)
//	if err != nil { ... }               // no GPU visible to this rank
//	// open the CUDA backend on pl.Device (an ordinal after CUDA_VISIBLE_DEVICES)
//
// Plan honours CUDA_VISIBLE_DEVICES as captured by Inventory, with CUDA's own
// rules: entries are indices or (prefixes of) GPU UUIDs, and the first entry
// that matches no GPU ends the list. Ranks are spread round-robin over the
// visible GPUs; several ranks may share one GPU (Placement.Sharing says how
// many, and a note says that they then compete for its memory and SMs).
//
// Nothing here touches CUDA itself: the CUDA device ordinal in a Placement is
// what cudaops opens.
package probe
