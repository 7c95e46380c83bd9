"""The only code with side effects on the kernel: rtnetlink, namespaces, nftables, sysctl, ARP,
DHCP clients, capabilities, processes (``docs/architecture.md``).

A regular package, not a namespace package: the CNI plugin's module file can serve it, and
``import netplumb.kernel`` never scans the whole of ``sys.path``.
"""
