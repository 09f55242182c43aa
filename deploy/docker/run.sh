#!/bin/sh
# Plain Docker, without rebuilding the app's image: a container of the init image lends its
# volume (/opt/keepalive-patch, declared by deploy/Dockerfile), read-only, to the app.
set -eu
docker create --name keepalive-patch keepalive-patch-init:0.2.0
docker run --volumes-from keepalive-patch:ro \
    -e PYTHONPATH=/opt/keepalive-patch/keepalive_patch/bootstrap \
    -e KEEPALIVE_PATCH_IDLE=30 \
    my-registry/my-app:1.0
# Or with no init image at all: build the directory on the host
# (keepalive-patch bundle /opt/keepalive-patch) and bind-mount it:
#   docker run -v /opt/keepalive-patch:/opt/keepalive-patch:ro \
#       -e PYTHONPATH=/opt/keepalive-patch/keepalive_patch/bootstrap my-registry/my-app:1.0
