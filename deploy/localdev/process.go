package localdev

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProcessSpec describes a child server process.
type ProcessSpec struct {
	// Name names the process in messages ("postgres", "temporal", ...).
	Name string
	// Path is the executable; Args are its arguments (without argv[0]).
	Path string
	Args []string
	// Env is the environment; nil inherits this process's environment.
	Env []string
	// Dir is the working directory; empty means the current one.
	Dir string
	// LogPath is the file that receives the child's stdout and stderr
	// (appended to, created with its parent directories).
	LogPath string
	// Tee, when set, receives a copy of the output as well.
	Tee io.Writer
	// StopSignal asks the process to shut down gracefully (SIGTERM when 0).
	StopSignal syscall.Signal
	// ParentDeathSignal is delivered to the child by the kernel when this
	// process dies (SIGKILL when 0). Choose the server's graceful or fast
	// shutdown signal where it has one.
	ParentDeathSignal syscall.Signal
	// Credential runs the child as another user (used to run Postgres as an
	// unprivileged user when we are root).
	Credential *syscall.Credential
}

// logMarker starts the lines we write into a child's log ourselves.
const logMarker = "==== ponte:"

// Process is a running child started by StartProcess.
type Process struct {
	spec     ProcessSpec
	cmd      *exec.Cmd
	logFile  *os.File
	logStart int64 // size of the log when this run started
	done     chan struct{}
	waitErr  error // set before done is closed

	stopOnce sync.Once
	stopErr  error
}

// StartProcess starts a child in its own process group with its output in
// spec.LogPath.
//
// Its own process group keeps a terminal's Ctrl-C (which the terminal sends
// to the whole foreground group) away from the child: the supervisor decides
// when and in which order children stop. The parent-death signal covers the
// supervisor dying without cleaning up. Linux delivers it when the OS thread
// that forked the child exits; the Go runtime only retires threads whose
// goroutine exits while locked to them, which nothing here does.
func StartProcess(spec ProcessSpec) (*Process, error) {
	if spec.StopSignal == 0 {
		spec.StopSignal = syscall.SIGTERM
	}
	if spec.ParentDeathSignal == 0 {
		spec.ParentDeathSignal = syscall.SIGKILL
	}
	if err := os.MkdirAll(filepath.Dir(spec.LogPath), 0o755); err != nil {
		return nil, fmt.Errorf("creating log directory for %s: %w", spec.Name, err)
	}
	logFile, err := os.OpenFile(spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log file for %s: %w", spec.Name, err)
	}
	logStart, _ := logFile.Seek(0, io.SeekEnd)
	fmt.Fprintf(logFile, "%s %s: starting %s %s\n", logMarker, time.Now().Format(time.RFC3339), spec.Path, strings.Join(spec.Args, " "))

	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = spec.Env
	cmd.Dir = spec.Dir
	cmd.Stdin = nil
	var out io.Writer = logFile
	if spec.Tee != nil {
		out = io.MultiWriter(logFile, spec.Tee)
		// With a non-file writer, exec copies through a pipe; grandchildren
		// that inherited it must not keep Wait from returning.
		cmd.WaitDelay = 2 * time.Second
	}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  spec.ParentDeathSignal,
		Credential: spec.Credential,
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", spec.Name, spec.Path, err)
	}
	p := &Process{spec: spec, cmd: cmd, logFile: logFile, logStart: logStart, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		fmt.Fprintf(logFile, "%s %s: %s exited: %v\n", logMarker, time.Now().Format(time.RFC3339), spec.Name, exitText(p.waitErr))
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// Name is the process's name from its spec.
func (p *Process) Name() string { return p.spec.Name }

// Pid is the child's process id (and its process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// LogPath is the file the child's output goes to.
func (p *Process) LogPath() string { return p.spec.LogPath }

// Done is closed when the child has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the child's exit error (nil for exit status 0). Call it after Done.
func (p *Process) Err() error {
	<-p.done
	return p.waitErr
}

// Exited reports whether the child has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop asks the child to shut down with its stop signal, waits up to grace,
// then kills its whole process group. Whatever is left in the group after the
// child exits (e.g. plugins of a crashed server) is killed too. It is safe to
// call more than once and after the child exited on its own.
func (p *Process) Stop(grace time.Duration) error {
	p.stopOnce.Do(func() { p.stopErr = p.stop(grace) })
	return p.stopErr
}

func (p *Process) stop(grace time.Duration) error {
	pid := p.cmd.Process.Pid
	if !p.Exited() {
		if err := syscall.Kill(pid, p.spec.StopSignal); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("signalling %s (pid %d): %w", p.spec.Name, pid, err)
		}
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.spec.Name, pid)
			}
			killGroup(pid)
			return fmt.Errorf("%s did not stop within %s and was killed", p.spec.Name, grace)
		}
	}
	killGroup(pid)
	return nil
}

// killGroup kills what is left of a process group whose leader has been
// reaped. The leader's pid cannot have been reused yet: it was reaped
// microseconds ago and Linux hands out pids sequentially.
func killGroup(pgid int) {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// LogTail returns the last n lines this run of the child wrote to its log,
// for error messages.
func (p *Process) LogTail(n int) string { return tailFile(p.spec.LogPath, p.logStart, n) }

// tailFile returns the last n lines of path after byte offset from.
func tailFile(path string, from int64, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if from > 0 && from <= int64(len(b)) {
		b = b[from:]
	}
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
	}
	var lines [][]byte
	for _, line := range bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n")) {
		// Our own start and exit markers say nothing the caller does not
		// know; the child's last words are what matter.
		if !bytes.HasPrefix(line, []byte(logMarker)) {
			lines = append(lines, line)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// exitedError describes a child that exited while we waited for it to become
// ready, with the end of its log.
func (p *Process) exitedError(what string) error {
	return fmt.Errorf("%s: %s exited (%v); last lines of %s:\n%s", what, p.spec.Name, exitText(p.waitErr), p.spec.LogPath, p.LogTail(30))
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
