"""A git client built on libgit2 (Debian's python3-pygit2), for gitmesh's
interoperability tests (e2e/clients_test.go).

    pygit2_client.py clone URL DIR
    pygit2_client.py push DIR URL REFSPEC
    pygit2_client.py fetch DIR URL REFSPEC

The key is $CLIENT_KEY (PEM or OpenSSH, $CLIENT_KEY.pub beside it), the
ssh login $CLIENT_LOGIN, host keys $HOME/.ssh/known_hosts, which libgit2
checks. What the server sends as progress (sideband band 2) is printed as
"remote: ..." on stderr, as git does; a rejected ref or an error exits 1.
"""
import os
import sys

import pygit2


class Callbacks(pygit2.RemoteCallbacks):
    def __init__(self):
        super().__init__()
        self.rejected = []

    def credentials(self, url, username_from_url, allowed_types):
        key = os.environ["CLIENT_KEY"]
        return pygit2.Keypair(username_from_url or os.environ["CLIENT_LOGIN"], key + ".pub", key, "")

    def certificate_check(self, certificate, valid, host):
        # libgit2 checked the host key against ~/.ssh/known_hosts.
        if not valid:
            raise pygit2.GitError("host key of %s not in known_hosts" % host)
        return True

    def sideband_progress(self, text):
        for line in text.replace("\r", "\n").splitlines():
            if line.strip():
                sys.stderr.write("remote: %s\n" % line)
                sys.stderr.flush()

    def push_update_reference(self, refname, message):
        if message:
            self.rejected.append("%s (%s)" % (refname, message))


def remote(repo, url):
    """A remote for url (this pygit2 has no anonymous remotes)."""
    if "test" in repo.remotes.names():
        repo.remotes.delete("test")
    return repo.remotes.create("test", url)


def main(argv):
    cb = Callbacks()
    try:
        if argv[0] == "clone":
            pygit2.clone_repository(argv[1], argv[2], callbacks=cb)
        elif argv[0] == "push":
            repo = pygit2.Repository(argv[1])
            remote(repo, argv[2]).push([argv[3]], callbacks=cb)
        elif argv[0] == "fetch":
            repo = pygit2.Repository(argv[1])
            remote(repo, argv[2]).fetch([argv[3]], callbacks=cb)
        else:
            sys.stderr.write("unknown command %s\n" % argv[0])
            return 2
    except (pygit2.GitError, KeyError, ValueError) as e:
        sys.stderr.write("error: %s\n" % e)
        return 1
    if cb.rejected:
        sys.stderr.write("rejected: %s\n" % ", ".join(cb.rejected))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
