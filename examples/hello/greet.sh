#!/bin/sh
echo "$GREETING from $(id -un) (uid $(id -u)) in $(pwd), kernel $(uname -r)"
if [ -f /app/built-by.txt ]; then echo "at build time: $(cat /app/built-by.txt)"; fi
