package testenv

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestProgramName(t *testing.T) {
	for cmdline, want := range map[string]string{
		"/usr/lib/postgresql/15/bin/postgres\x00-D\x00/tmp/pg\x00": "postgres",
		"postgres: postgres db 127.0.0.1(4242) idle\x00":           "postgres",
		"postgres: walwriter \x00":                                 "postgres",
		"/work/bin/temporal\x00server\x00start-dev\x00":            "temporal",
		"/tmp/x/001/ponte-connector-stripe\x00":                    "ponte-connector-stripe",
		"ponte\x00serve\x00":                                       "ponte",
	} {
		if got := programName(cmdline); got != want {
			t.Errorf("programName(%q) = %q, want %q", cmdline, got, want)
		}
	}
}

func TestCPUByProgramCountsThisProcess(t *testing.T) {
	// Spend CPU until the kernel has counted some for this process.
	deadline := time.Now().Add(5 * time.Second)
	for x := 0; ; x++ {
		if x%1_000_000 == 0 {
			if ticks, _ := CPUTicks(os.Getpid()); ticks > 0 || time.Now().After(deadline) {
				break
			}
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if got := CPUByProgram()[filepath.Base(self)]; got <= 0 {
		t.Errorf("CPUByProgram has %d ticks for this test binary %s, want some", got, filepath.Base(self))
	}
}

func TestCPUSteal(t *testing.T) {
	steal, total := CPUSteal()
	if total <= 0 || steal < 0 || steal > total {
		t.Errorf("CPUSteal = %d of %d ticks", steal, total)
	}
}
