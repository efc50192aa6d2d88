package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/peapod/peapod/internal/runtime"
)

// newPodCommand runs pods straight on the node runtime, without the API:
// for learning what a node does and for debugging the runtime.
func newPodCommand() *cobra.Command {
	var flags nodeFlags
	cmd := &cobra.Command{
		Use:   "pod",
		Short: "Run or remove a pod directly on this node's runtime (no API server)",
	}
	flags.register(cmd.PersistentFlags())
	var file, handler string
	run := &cobra.Command{
		Use:   "run -f POD.yaml",
		Short: "Create a pod's sandbox and start its containers once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.standaloneNode()
			if err != nil {
				return err
			}
			pod, err := readPod(file)
			if err != nil {
				return err
			}
			rt, err := runtime.New(cmd.Context(), cfg, slog.Default())
			if err != nil {
				return err
			}
			id, err := rt.StartPod(cmd.Context(), pod, handler)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		},
	}
	run.Flags().StringVarP(&file, "filename", "f", "", "pod manifest (YAML or JSON)")
	run.Flags().StringVar(&handler, "runtime", "", "OCI runtime handler (runc, crun, ...)")
	_ = run.MarkFlagRequired("filename")
	var grace time.Duration
	rm := &cobra.Command{
		Use:   "rm SANDBOX...",
		Short: "Stop and remove sandboxes (prefixes as shown by peapod ps work)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := flags.standaloneNode()
			if err != nil {
				return err
			}
			rt, err := runtime.New(cmd.Context(), cfg, slog.Default())
			if err != nil {
				return err
			}
			sandboxes, err := rt.ListSandboxes(cmd.Context())
			if err != nil {
				return err
			}
			for _, arg := range args {
				id, err := matchSandbox(sandboxes, arg)
				if err != nil {
					return err
				}
				if err := rt.DeletePod(cmd.Context(), id, grace); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), id)
			}
			return nil
		},
	}
	rm.Flags().DurationVar(&grace, "grace-period", 30*time.Second, "time between SIGTERM and SIGKILL")
	cmd.AddCommand(run, rm)
	return cmd
}

func readPod(file string) (*corev1.Pod, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, fmt.Errorf("%s: a %T, not a Pod", file, obj)
	}
	if pod.Namespace == "" {
		pod.Namespace = "default"
	}
	if pod.UID == "" {
		pod.UID = uuid.NewUUID()
	}
	return pod, nil
}

func matchSandbox(sandboxes []*runtime.SandboxStatus, prefix string) (string, error) {
	var found []string
	for _, sb := range sandboxes {
		if len(prefix) <= len(sb.ID) && sb.ID[:len(prefix)] == prefix || sb.PodNamespace+"/"+sb.PodName == prefix {
			found = append(found, sb.ID)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no sandbox %q", prefix)
	case 1:
		return found[0], nil
	default:
		return "", fmt.Errorf("%q names %d sandboxes; give more of the ID", prefix, len(found))
	}
}
