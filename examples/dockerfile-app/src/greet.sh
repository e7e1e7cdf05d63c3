#!/bin/sh
# greeter @VERSION@
[ "$1" = "--check" ] && exit 0
msg="${GREETING:-Hello}, ${TARGET:-world}"
[ "$1" = "--loud" ] && msg="$(echo "$msg" | tr a-z A-Z)!"
echo "$msg"
