package main

import (
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/peapod/peapod/internal/image"
)

func newImageCommand() *cobra.Command {
	var flags nodeFlags
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage this node's images: import, pull, list, remove, prune",
	}
	flags.register(cmd.PersistentFlags())
	store := func() (*image.Store, error) {
		cfg, err := flags.node()
		if err != nil {
			return nil, err
		}
		return image.NewStore(image.Options{
			Root:     cfg.Paths().ImageStore(),
			Mirrors:  cfg.RegistryMirrors,
			Insecure: cfg.InsecureRegistries,
			Logger:   slog.Default(),
		})
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "import FILE...",
		Short: "Import docker-archive or OCI-layout tarballs",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := store()
			if err != nil {
				return err
			}
			for _, file := range args {
				imgs, err := s.Import(cmd.Context(), file)
				if err != nil {
					return err
				}
				for _, img := range imgs {
					fmt.Fprintf(cmd.OutOrStdout(), "imported %s %s\n", strings.Join(img.Names, ","), img.ID)
				}
			}
			return nil
		},
	}, &cobra.Command{
		Use:   "pull REF",
		Short: "Pull an image from its registry (or a configured mirror)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := store()
			if err != nil {
				return err
			}
			img, err := s.Pull(cmd.Context(), args[0], image.LogProgress(slog.Default(), time.Second))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pulled %s %s\n", strings.Join(img.Names, ","), img.ID)
			return nil
		},
	}, &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List images",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := store()
			if err != nil {
				return err
			}
			imgs, err := s.List()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "IMAGE\tID\tSIZE")
			for _, img := range imgs {
				fmt.Fprintf(w, "%s\t%s\t%d\n", strings.Join(img.Names, ","), shortID(strings.TrimPrefix(img.ID, "sha256:")), img.Size)
			}
			return w.Flush()
		},
	}, &cobra.Command{
		Use:     "rm REF...",
		Aliases: []string{"remove"},
		Short:   "Remove images no container uses",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := store()
			if err != nil {
				return err
			}
			for _, ref := range args {
				if err := s.Remove(cmd.Context(), ref); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", ref)
			}
			return nil
		},
	}, &cobra.Command{
		Use:   "prune",
		Short: "Remove every image no container uses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := store()
			if err != nil {
				return err
			}
			removed, err := s.Prune(cmd.Context())
			if err != nil {
				return err
			}
			for _, ref := range removed {
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", ref)
			}
			return nil
		},
	})
	return cmd
}
