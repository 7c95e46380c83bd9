"""``netplumb cni ...``: argument parsing for the CNI plugin's installer.

Wired into ``netplumb``'s parser by ``register(subs)``; the plugin itself (``netplumb-cni``)
has no command line: runtimes call it with CNI_* variables and a config on stdin.
"""

from __future__ import annotations

import argparse

EXAMPLE = "netplumb cni install --dir /opt/cni/bin --conf-dir /etc/cni/net.d"


def register(subs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    help_text = "install netplumb as a CNI plugin (Podman, containerd, Kubernetes)"
    p = subs.add_parser(
        "cni",
        help=help_text,
        description=help_text,
        epilog=f"example:\n  {EXAMPLE}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    csubs = p.add_subparsers(
        dest="cni_command", metavar="SUBCOMMAND", parser_class=type(p), required=True
    )
    ci = csubs.add_parser(
        "install",
        help="write the plugin (with its compiled modules, unless --standalone) and an example "
        "conflist",
    )
    ci.add_argument(
        "--dir", default="/opt/cni/bin", help="CNI plugin directory (default /opt/cni/bin)"
    )
    ci.add_argument(
        "--conf-dir",
        default="/etc/cni/net.d",
        help="CNI config directory for the example conflist (default /etc/cni/net.d)",
    )
    ci.add_argument(
        "--no-conf", action="store_true", help="write the plugin only, no example conflist"
    )
    ci.add_argument(
        "--standalone",
        action="store_true",
        help="a self-contained plugin file run by the node's python3 (for the DaemonSet)",
    )
    ci.add_argument(
        "--python",
        default="/usr/bin/python3",
        help="the node's Python 3.11+ for --standalone (default /usr/bin/python3)",
    )
    ci.add_argument(
        "--client",
        choices=("auto", "yes", "no"),
        default="auto",
        help="install the compiled client of `netplumb cni agent` (auto: if cc is there)",
    )
    ci.add_argument(
        "--agent",
        choices=("auto", "connect", "off"),
        default="auto",
        help="what the client does about `netplumb cni agent`: auto, use it and start it on "
        "demand; connect, use it if it runs; off, never (default auto)",
    )
    ca = csubs.add_parser(
        "agent",
        help="serve netplumb-cni calls from a resident process (the client's fast path; the "
        "client starts one on demand)",
        description="Serve netplumb-cni calls from a resident process, for the compiled client "
        "(`netplumb cni install`), on a socket in this namespace's state directory. One agent "
        "per state directory: if another one runs (an on-demand one), this one waits for it "
        "to exit.",
    )
    ca.add_argument(
        "--idle-timeout",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="exit after this many seconds without a call (default 0: never)",
    )
    p.set_defaults(func=cmd_cni)


def cmd_cni(args: argparse.Namespace) -> int:
    if args.cni_command == "agent":
        from netplumb.cni.agent import serve

        try:
            serve(idle=args.idle_timeout)
        except KeyboardInterrupt:
            pass
        return 0
    from netplumb.cni.install import install

    for path in install(
        args.dir,
        None if args.no_conf else args.conf_dir,
        standalone=args.standalone,
        python=args.python,
        client={"auto": None, "yes": True, "no": False}[args.client],
        agent=args.agent,
    ):
        print(path)
    return 0
