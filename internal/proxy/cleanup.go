package proxy

import (
	"context"
	"errors"
	"fmt"
	"os/exec"

	"sigs.k8s.io/knftables"
)

// Cleanup removes, in the caller's network namespace, the proxy's table
// and every conntrack entry of a connection it translated, for `peapod
// reset`. Idempotent: no table, no entries, or no nft binary (then there
// can be no table of ours) is success.
func Cleanup(ctx context.Context, table string) error {
	if table == "" {
		table = DefaultTable
	}
	var errs []error
	if _, err := exec.LookPath("nft"); err == nil {
		nft, err := knftables.New(knftables.IPv4Family, table)
		if err != nil {
			errs = append(errs, fmt.Errorf("remove table ip %s: %w", table, err))
		} else {
			tx := nft.NewTransaction()
			tx.Delete(&knftables.Table{})
			if err := nft.Run(ctx, tx); err != nil && !knftables.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("remove table ip %s: %w", table, err))
			}
		}
	}
	// After the table: no rule can mark a new flow meanwhile.
	if _, err := deleteOurFlows(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
