// Package kubectl embeds k8s.io/kubectl so `peapod kubectl ...` works on a
// machine without a kubectl binary.
//
// Usage: call Main(os.Args[2:], adminKubeconfig) from the CLI and exit with
// its result. The kubeconfig argument is only a default: an explicit
// --kubeconfig flag or a KUBECONFIG environment variable wins, as with the
// real kubectl.
package kubectl

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/component-base/cli"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/plugin"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
)

// Main runs kubectl with args (without the program name) on the process's
// standard streams and returns its exit code. kubeconfig, when not empty,
// is used unless --kubeconfig or $KUBECONFIG says otherwise. It never
// calls os.Exit.
func Main(args []string, kubeconfig string) int {
	return Run(args, kubeconfig, os.Stdin, os.Stdout, os.Stderr)
}

// fatalMu serialises runs: kubectl's fatal-error hook is package state of
// k8s.io/kubectl, so concurrent runs in one process must not overlap.
var fatalMu sync.Mutex

// exitCode carries a fatal error's exit code out of kubectl's CheckErr.
type exitCode int

// Run is Main with explicit streams (for tests and embedding). Runs are
// serialised within a process.
func Run(args []string, kubeconfig string, in io.Reader, out, errOut io.Writer) (code int) {
	fatalMu.Lock()
	defer fatalMu.Unlock()
	streams := genericiooptions.IOStreams{In: in, Out: out, ErrOut: errOut}
	flags := genericclioptions.NewConfigFlags(true).WithDeprecatedPasswordFlag().
		WithDiscoveryBurst(300).WithDiscoveryQPS(50.0).WithWarningPrinter(streams)
	if kubeconfig != "" && os.Getenv("KUBECONFIG") == "" {
		kc := kubeconfig
		flags.KubeConfig = &kc
	}
	cmd := kubectlcmd.NewDefaultKubectlCommandWithArgs(kubectlcmd.KubectlOptions{
		PluginHandler: kubectlcmd.NewDefaultPluginHandler(plugin.ValidPluginFilenamePrefixes),
		Arguments:     append([]string{"kubectl"}, args...),
		ConfigFlags:   flags,
		IOStreams:     streams,
	})
	cmd.SetArgs(args)
	cmd.SetIn(in)
	cmd.SetOut(out)
	cmd.SetErr(errOut)

	// kubectl reports most failures through cmdutil.CheckErr, which exits
	// the process by default; turn that into a return value.
	cmdutil.BehaviorOnFatal(func(msg string, c int) {
		if msg != "" {
			if !strings.HasSuffix(msg, "\n") {
				msg += "\n"
			}
			fmt.Fprint(errOut, msg)
		}
		panic(exitCode(c))
	})
	defer cmdutil.DefaultBehaviorOnFatal()
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(exitCode)
			if !ok {
				panic(r)
			}
			code = int(c)
		}
	}()
	if err := cli.RunNoErrOutput(cmd); err != nil {
		var ee interface{ ExitStatus() int }
		if errors.As(err, &ee) {
			return ee.ExitStatus()
		}
		cmdutil.CheckErr(err)
		return 1
	}
	return 0
}
