# shared helpers
log() { echo "[$(date -u +%H:%M:%S)] $*"; }
