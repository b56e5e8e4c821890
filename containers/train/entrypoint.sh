#!/bin/sh
# Entry point of the earthseg training image.
#   docker run IMAGE train [ARGS]        SageMaker training  -> earthseg train [ARGS]
#   docker run IMAGE                     SDK v3 local mode   -> earthseg train
#   docker run IMAGE preprocess [ARGS]   SageMaker Processing -> earthseg preprocess [ARGS]
#   docker run IMAGE prepare [ARGS]      the pipeline's Prepare step (Processing)
#                                        -> earthseg prepare [ARGS]
#   docker run IMAGE doctor [--json]     does this host's GPU fit the image -> earthseg doctor
#   docker run IMAGE COMMAND [ARGS]      anything else runs as given (bash, python -c ...)
set -e

case "${1-}" in
    "" | train)
        [ "$#" -gt 0 ] && shift
        exec earthseg train "$@"
        ;;
    preprocess | prepare | doctor)
        exec earthseg "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
