#!/bin/bash
# slurmbox-ldap-keys: sshd's AuthorizedKeysCommand on the login node of a cluster whose
# users come from LDAP. Prints the sshPublicKey values of the user named as its
# argument, one per line, from the directory nslcd uses (the address, base and bind
# credentials are read from /etc/nslcd.conf, which only root can read).
#
# Usage: slurmbox-ldap-keys USER
set -euo pipefail

user="${1:?usage: slurmbox-ldap-keys USER}"
# A name that could change the search filter matches nobody.
case "$user" in *[!a-z0-9._-]* | "") exit 0 ;; esac

conf=/etc/nslcd.conf
setting() { awk -v key="$1" '$1 == key { sub(/^[^ \t]+[ \t]+/, ""); print; exit }' "$conf"; }

args=(-x -LLL -o ldif_wrap=no -l 5 -H "$(setting uri)" -b "$(setting base)")
binddn=$(setting binddn)
# The password reaches ldapsearch on its stdin, never its command line (which every
# user of the node can read).
[ -z "$binddn" ] || args+=(-D "$binddn" -y /proc/self/fd/0)
cacert=$(setting tls_cacertfile)
[ -z "$cacert" ] || export LDAPTLS_CACERT="$cacert"

setting bindpw | tr -d '\n' |
    ldapsearch "${args[@]}" "(&(objectClass=posixAccount)(uid=$user))" sshPublicKey |
    sed -n 's/^sshPublicKey: //p'
