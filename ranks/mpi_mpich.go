//go:build cgo && !nompi && mpich

package ranks

// MPICH (and its derivatives that ship mpich.pc): go build -tags mpich.

// #cgo pkg-config: mpich
import "C"
