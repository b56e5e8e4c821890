#!/bin/sh
# Entry point of the earthseg inference image.
#   docker run IMAGE serve               SageMaker hosting and batch transform -> earthseg serve
#   docker run IMAGE predict [ARGS]      whole-scene prediction in the container
#   docker run IMAGE evaluate [ARGS]     the pipeline's Evaluate step (Processing): the test
#                                        scenes predicted and scored -> earthseg evaluate [ARGS]
#   docker run IMAGE doctor [--json]     does this host's GPU fit the image -> earthseg doctor
#   docker run IMAGE COMMAND [ARGS]      anything else runs as given (sh, python -c ...)
# exec: the server is PID 1 and gets SIGTERM from `docker stop` and SageMaker itself.
set -e

case "${1-}" in
    "" | serve)
        [ "$#" -gt 0 ] && shift
        exec earthseg serve "$@"
        ;;
    predict | evaluate | doctor)
        exec earthseg "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
