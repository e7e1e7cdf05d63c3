#!/bin/sh
. "$PLATFORM_LIB"
while true; do log "working"; sleep 5; done
