package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// TicksPerSecond is the unit of [CPUTicks]: USER_HZ, 100 on Linux.
const TicksPerSecond = 100

// CPUTicks reads CPU time from /proc for benchmarks that report what a
// request costs. For pid > 0 it returns the process's user + system time in
// ticks (total 0). For pid 0 it returns the whole machine: busy, the time
// spent on anything but idle, I/O wait and steal (time the hypervisor gave
// to other machines, which is not this machine's work), and total, every
// tick. Both are 0 when /proc cannot be read.
func CPUTicks(pid int) (busy, total int64) {
	if pid == 0 {
		m := machineTicks()
		for i, v := range m {
			total += v
			if i != statIdle && i != statIOWait && i != statSteal {
				busy += v
			}
		}
		return busy, total
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return utime + stime, 0
}

// CPUSteal reads the machine's steal time (time the hypervisor gave to other
// machines while this one had work) and every tick, from /proc/stat. On a
// shared VM it says how much of a run's wall time the machine did not have:
// at 40% steal two cores are worth about 1.2.
func CPUSteal() (steal, total int64) {
	m := machineTicks()
	for _, v := range m {
		total += v
	}
	return m[statSteal], total
}

// The first eight columns of /proc/stat's "cpu" line: user nice system idle
// iowait irq softirq steal (guest time, after them, is already in user).
const (
	statIdle   = 3
	statIOWait = 4
	statSteal  = 7
)

// machineTicks reads those eight columns; all zero when /proc cannot be read.
func machineTicks() (ticks [8]int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return ticks
	}
	fields := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1:]
	for i := 0; i < len(ticks) && i < len(fields); i++ {
		ticks[i], _ = strconv.ParseInt(fields[i], 10, 64)
	}
	return ticks
}

// CPUByProgram reads the user + system time, in ticks, of every process on
// the machine that is still running, summed by program: the base name of its
// argv[0] ("postgres" for Postgres and all its backends, "temporal", a plugin's
// binary name, the test binary's own name). Benchmarks take it before and
// after a run to say which program a request's CPU went to. Processes that
// exit in between are not counted.
func CPUByProgram() map[string]int64 {
	out := map[string]int64{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(cmdline) == 0 {
			continue // gone, or a kernel thread
		}
		ticks, _ := CPUTicks(pid)
		out[programName(string(cmdline))] += ticks
	}
	return out
}

// programName is the base name of a command line's argv[0]. Postgres rewrites
// its backends' argv[0] to "postgres: user db host state", hence the cut at
// the first space and the trimmed colon.
func programName(cmdline string) string {
	arg0, _, _ := strings.Cut(cmdline, "\x00")
	arg0, _, _ = strings.Cut(arg0, " ")
	arg0 = strings.TrimSuffix(arg0, ":")
	return filepath.Base(arg0)
}

// CPUDelta is what each program spent between two CPUByProgram readings,
// largest first; programs that spent nothing are left out.
func CPUDelta(before, after map[string]int64) []ProgramCPU {
	var d []ProgramCPU
	for name, t := range after {
		if spent := t - before[name]; spent > 0 {
			d = append(d, ProgramCPU{Program: name, Ticks: spent})
		}
	}
	sort.Slice(d, func(i, j int) bool { return d[i].Ticks > d[j].Ticks })
	return d
}

// ProgramCPU is one program's share of a CPUDelta.
type ProgramCPU struct {
	Program string
	Ticks   int64
}

// Per says what the program spent per unit of work, for n units.
func (p ProgramCPU) Per(n int) time.Duration {
	return time.Duration(float64(p.Ticks) / TicksPerSecond / float64(max(n, 1)) * float64(time.Second))
}
