package cli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"gitmesh/access"
	"gitmesh/db"
	"gitmesh/termsafe"
)

// The key commands: storing users' and the cluster's public keys, and
// handing them to sshd as an authorized_keys file or, one key at a time,
// as its AuthorizedKeysCommand.
func init() {
	register(func(a *app) *cli.Command { return a.keyCommand() })
	register(func(a *app) *cli.Command { return a.authorizedKeysCommand() })
	register(func(a *app) *cli.Command { return a.keysCommandCommand() })
}

func (a *app) keyCommand() *cli.Command {
	return &cli.Command{
		Name:  "key",
		Usage: "manage users' SSH keys and the cluster key",
		Subcommands: []*cli.Command{
			{
				Name: "add", Usage: "store a user's public key, or with --cluster the cluster's",
				ArgsUsage: "USER PUBKEY-FILE | --cluster PUBKEY-FILE",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "cluster", Usage: "the key devices fetch from each other with"}},
				Action: a.withDB("key-add", func(c *cli.Context, d *sql.DB) error {
					want := []string{"USER", "PUBKEY-FILE"}
					if c.Bool("cluster") || contains(c.Args().Slice(), "--cluster") {
						want = []string{"PUBKEY-FILE"}
					}
					v, err := parseArgs(c, want, nil, []string{"cluster"})
					if err != nil {
						return err
					}
					user, file := "", v.pos[0]
					if !v.bools["cluster"] {
						user, file = v.pos[0], v.pos[1]
						if err := access.ValidateName("user", user); err != nil {
							return usageError{err}
						}
					}
					k, err := readKey(c.App.Reader, file)
					if err != nil {
						return usageError{err}
					}
					if err := access.AddKey(c.Context, d, user, k); err != nil {
						return err
					}
					owner := "user " + user
					if user == "" {
						owner = "the cluster"
					}
					fmt.Fprintf(c.App.Writer, "added %s key %s for %s; regenerate authorized_keys with 'gitmesh authorized-keys' unless sshd uses 'gitmesh keys-command'\n", k.Type, k.Fingerprint, owner)
					return nil
				}),
			},
			{
				Name: "list", Usage: "list stored keys",
				Action: a.withDB("key-list", func(c *cli.Context, d *sql.DB) error {
					if _, err := args(c); err != nil {
						return err
					}
					keys, err := access.Keys(c.Context, d)
					if err != nil {
						return err
					}
					tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "USER\tTYPE\tFINGERPRINT\tCOMMENT")
					for _, k := range keys {
						user := k.User
						if k.Cluster() {
							user = "(cluster)"
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", user, k.Type, k.Fingerprint, termsafe.Escape(k.Comment))
					}
					return tw.Flush()
				}),
			},
			{
				Name: "remove", Usage: "forget a key", ArgsUsage: "FINGERPRINT (SHA256:..., as 'key list' shows it)",
				Action: a.withDB("key-remove", func(c *cli.Context, d *sql.DB) error {
					v, err := args(c, "FINGERPRINT")
					if err != nil {
						return err
					}
					if err := access.RemoveKey(c.Context, d, v[0]); err != nil {
						return err
					}
					return done(c, "removed key %s; regenerate authorized_keys with 'gitmesh authorized-keys' unless sshd uses 'gitmesh keys-command'", v[0])
				}),
			},
		},
	}
}

// maxKeyFile bounds what readKey reads: a public key is one line, and a
// larger file (or a device) is a mistake, not a key.
const maxKeyFile = 64 << 10

// readKey reads one public key from file ("-": standard input).
func readKey(stdin io.Reader, file string) (access.Key, error) {
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return access.Key{}, fmt.Errorf("read public key: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxKeyFile+1))
	if err != nil {
		return access.Key{}, fmt.Errorf("read public key %s: %w", file, err)
	}
	if len(b) > maxKeyFile {
		return access.Key{}, fmt.Errorf("%s: %w: the file is larger than 64 KiB; give the one line of a .pub file", file, access.ErrBadKey)
	}
	k, err := access.ParseKey(string(b))
	if err != nil {
		return access.Key{}, fmt.Errorf("%s: %w", file, err)
	}
	return k, nil
}

func (a *app) authorizedKeysCommand() *cli.Command {
	return &cli.Command{
		Name:  "authorized-keys",
		Usage: "print the authorized_keys file for sshd: every stored key with its forced command",
		Flags: []cli.Flag{&cli.StringFlag{Name: "binary", Usage: "gitmesh path to put in the forced commands (default: this binary)"}},
		Action: a.withDB("authorized-keys", func(c *cli.Context, d *sql.DB) error {
			v, err := parseArgs(c, nil, []string{"binary"}, nil)
			if err != nil {
				return err
			}
			bin, conf, err := a.forcedCommandPaths(v.vals["binary"])
			if err != nil {
				return err
			}
			keys, err := access.Keys(c.Context, d)
			if err != nil {
				return err
			}
			if conf == "" {
				tell("warning: no --config given, so the forced commands carry no settings file; sshd passes almost no environment")
			}
			fmt.Fprintf(c.App.Writer, "# Generated by 'gitmesh authorized-keys'; regenerate after 'gitmesh key add' or 'key remove'.\n")
			for _, k := range keys {
				fmt.Fprintln(c.App.Writer, a.authorizedLine(bin, conf, k))
			}
			return nil
		}),
	}
}

// keysCommandCommand is sshd's AuthorizedKeysCommand: one connection, one
// indexed query, one line (or none) on stdout.
func (a *app) keysCommandCommand() *cli.Command {
	return &cli.Command{
		Name:      "keys-command",
		Usage:     "sshd AuthorizedKeysCommand: print the authorized_keys line of one offered key",
		ArgsUsage: "LOGIN-USER KEY-TYPE BASE64-KEY (sshd's %u %t %k)",
		Action: func(c *cli.Context) error {
			v, err := args(c, "LOGIN-USER", "KEY-TYPE", "BASE64-KEY")
			if err != nil {
				return err
			}
			// Keys open only the account gitmesh runs as (AuthorizedKeysCommandUser):
			// configured outside a "Match User git" block, a user's key must
			// not log in as root or anyone else.
			if me, err := user.Current(); err != nil || me.Username != v[0] {
				return nil
			}
			bin, conf, err := a.forcedCommandPaths("")
			if err != nil {
				return err
			}
			// Its own database URL when set: a role of its own keeps logins
			// working while the users' role has no connection left.
			if err := a.settings.NeedDatabase(); err != nil && a.settings.KeysDatabaseURL == "" {
				return err
			}
			d, err := db.Open(a.settings.KeysURL(), db.AppName("keys-command", "", "", ""), a.settings.ConnectTimeout.D())
			if err != nil {
				return err
			}
			defer d.Close()
			ctx, cancel := context.WithTimeout(c.Context, a.settings.ConnectTimeout.D()+5*time.Second)
			defer cancel()
			k, ok, err := access.LookupKey(ctx, d, v[1], v[2])
			if err != nil || !ok {
				return err
			}
			fmt.Fprintln(c.App.Writer, a.authorizedLine(bin, conf, k))
			return nil
		},
	}
}

// authorizedLine is k's authorized_keys line; the cluster key's is limited
// to the cluster_from addresses when that is set.
func (a *app) authorizedLine(bin, conf string, k access.StoredKey) string {
	line := access.AuthorizedLine(access.ForcedCommand(bin, conf, k), k)
	if k.Cluster() {
		line = access.From(a.settings.ClusterFrom, line)
	}
	return line
}

// forcedCommandPaths returns the absolute gitmesh binary and config file
// the forced commands name.
func (a *app) forcedCommandPaths(bin string) (string, string, error) {
	var err error
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return "", "", fmt.Errorf("find this gitmesh binary: %w (give --binary PATH)", err)
		}
	}
	if !filepath.IsAbs(bin) {
		return "", "", usageError{errors.New("--binary must be an absolute path: sshd runs the forced command from the user's home")}
	}
	conf := a.settings.Path
	if conf != "" {
		if conf, err = filepath.Abs(conf); err != nil {
			return "", "", err
		}
	}
	if err := access.CheckPath("gitmesh binary", bin); err != nil {
		return "", "", err
	}
	if err := access.CheckPath("config", conf); err != nil {
		return "", "", err
	}
	return bin, conf, nil
}
