// Package testenv decides what a test does when the real thing it checks against is not
// installed (PyTorch, mpirun, npm, the Fashion-MNIST files): a skip on a developer's
// machine, a failure under CI (the CI variable set), whose set-up installs every one of
// them, so that no check there can pass by not running.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Python is Debian's interpreter, the one python3-torch is installed for (the python3 on
// a developer's PATH may be another one).
const Python = "/usr/bin/python3"

// Missing ends tb because what it needs is not installed: format says what, and how to
// install it.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		tb.Fatalf("%s (CI installs it: scripts/setup.sh)", msg)
	} else {
		tb.Skip(msg)
	}
}

// Torch ends tb with Missing unless python imports torch and numpy.
func Torch(tb testing.TB, python string) {
	tb.Helper()
	if out, err := exec.Command(python, "-c", "import torch, numpy").CombinedOutput(); err != nil {
		Missing(tb, "%s cannot import torch and numpy (apt-get install python3-torch): %v\n%s", python, err, out)
	}
}
