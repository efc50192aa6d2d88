package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/peapod/peapod/internal/runtime"
	"github.com/peapod/peapod/internal/storage"
)

func newPSCommand() *cobra.Command {
	var flags nodeFlags
	var output string
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List this node's sandboxes (pause PID, netns, IP, veth) and their containers",
		Long: `ps shows what docker ps shows in the tutorials, for peapod: every pod
sandbox on this node with its pause process, network namespace ("host" for
a hostNetwork pod, with the node's IPC or PID namespace and a user
namespace's ID mapping noted beside), pod IP and host-side veth, and under
it each container with its state, PID, OCI
runtime and restart count. Sandboxes of the warm pool, made ahead of any
pod (see --warm-sandboxes), are listed last with the pod "(warm)". It reads the data dir and
changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.node()
			if err != nil {
				return err
			}
			view := runtime.NewView(cfg)
			sandboxes, err := view.ListSandboxes(cmd.Context())
			if err != nil {
				return err
			}
			warm, err := view.WarmSandboxes()
			if err != nil {
				return err
			}
			sandboxes = append(sandboxes, warm...)
			switch output {
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(sandboxes)
			case "", "table":
				// The server's node also shows its state store: a full
				// one refuses every write, pods' status included.
				st, err := storage.ReadDBStatus(cfg.Paths().Etcd())
				if err != nil {
					return err
				}
				if st != nil {
					fmt.Fprintln(cmd.OutOrStdout(), etcdLine(st, time.Now()))
				}
				return printSandboxes(cmd.OutOrStdout(), sandboxes, time.Now())
			default:
				return fmt.Errorf("--output %q: want table or json", output)
			}
		},
	}
	flags.register(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func printSandboxes(out io.Writer, sandboxes []*runtime.SandboxStatus, now time.Time) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SANDBOX\tPOD\tSTATE\tPAUSE PID\tNETNS\tIP\tVETH\tRUNTIME\tAGE")
	for _, sb := range sandboxes {
		state := "Ready"
		switch {
		case !sb.Ready:
			state = "NotReady"
		case !sb.Alive:
			state = "Lost"
		}
		pod := sb.PodNamespace + "/" + sb.PodName
		if sb.Warm {
			pod = "(warm)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n",
			shortID(sb.ID), pod, state, sb.PausePID, namespaces(sb),
			orNone(strings.Join(sb.IPs, ",")), orNone(sb.HostVeth), sb.Handler, age(now, sb.CreatedAt))
		for _, c := range sb.Containers {
			pid := "-"
			if c.State == runtime.ContainerRunning {
				pid = fmt.Sprint(c.PID)
			}
			state := string(c.State)
			if c.State == runtime.ContainerExited {
				state = fmt.Sprintf("Exited (%d)", c.ExitCode)
			}
			kind := "container"
			if c.Init {
				kind = "init"
			}
			fmt.Fprintf(w, "  └ %s\t%s %s\t%s\tpid %s\trestarts %d\t%s\t\t%s\t%s\n",
				shortID(c.ID), kind, c.Name, state, pid, c.Attempt, c.Image, c.Handler, age(now, c.CreatedAt))
		}
	}
	return w.Flush()
}

// etcdLine summarises the embedded etcd's last maintenance check.
func etcdLine(st *storage.DBStatus, now time.Time) string {
	alarms := "none"
	if len(st.Alarms) > 0 {
		alarms = strings.Join(st.Alarms, ",") + " (writes refused)"
	}
	line := fmt.Sprintf("etcd: db %s (%s in use) of %s quota, alarms: %s, checked %s ago",
		mebibytes(st.DBSize), mebibytes(st.DBSizeInUse), mebibytes(st.Quota), alarms, age(now, st.Checked))
	if !st.LastDefrag.IsZero() {
		line += ", defragmented " + age(now, st.LastDefrag) + " ago"
	}
	return line
}

func mebibytes(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// namespaces is the NETNS cell: the pinned netns, or "host" for a pod on
// the node's network, followed by the other namespaces that are not the
// pod's own: the node's IPC or PID namespace, a user namespace's mapping.
func namespaces(sb *runtime.SandboxStatus) string {
	s := sb.NetNSPath
	if sb.HostNetwork {
		s = "host"
	}
	var host []string
	if sb.HostIPC {
		host = append(host, "ipc")
	}
	if sb.HostPID {
		host = append(host, "pid")
	}
	if len(host) > 0 {
		s += " (host " + strings.Join(host, ",") + ")"
	}
	if sb.UserNamespace != "" {
		s += " (userns " + sb.UserNamespace + ")"
	}
	return orNone(s)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// age formats a duration the way kubectl's AGE column does, coarsely.
func age(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}
