#!/bin/sh
# netplumb's udhcpc event script: configure the lease on the interface with ip(8).
# It never writes /etc/resolv.conf: the client runs with the host's file system, and the
# host's resolver configuration is not ours to change.
IP=ip
command -v ip >/dev/null 2>&1 || IP="busybox ip"
prefix() {  # dotted netmask -> prefix length
    n=0; for o in $(echo "$1" | tr . ' '); do
        case $o in 255) n=$((n+8));; 254) n=$((n+7));; 252) n=$((n+6));; 248) n=$((n+5));;
        240) n=$((n+4));; 224) n=$((n+3));; 192) n=$((n+2));; 128) n=$((n+1));; esac
    done; echo $n
}
case "$1" in
    deconfig)
        $IP -4 addr flush dev "$interface" scope global 2>/dev/null
        $IP link set "$interface" up
        ;;
    bound|renew)
        plen=${mask:-$(prefix "$subnet")}
        if [ "$1" = bound ] || ! $IP -4 addr show dev "$interface" | grep -q " $ip/$plen "; then
            $IP -4 addr flush dev "$interface" scope global
            $IP addr add "$ip/$plen" dev "$interface"
        fi
        if [ -n "$router" ]; then
            set -- $router
            $IP route replace default via "$1" dev "$interface"
        fi
        ;;
esac
exit 0
