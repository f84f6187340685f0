# The Java images of images.sh; sourced by it, never run.
# shellcheck shell=bash
#   jre                   eventflow/jre:17 (e2e/images/jre): Debian's OpenJDK 17 JRE.
#                         Built before the apps, never loaded: each app image carries it.
#   spring-<module>       eventflow/spring-<module>:<tag> (e2e/images/spring-app), one per
#                         module of apps/spring: the jar spring-apps.sh built, on the JRE.

# shellcheck disable=SC2034 # REFS and WORKLOADS are images.sh's
JRE_REF=docker.io/eventflow/jre:17
REFS["jre"]=$JRE_REF
declare -A SPRING_JAR=()
while read -r module; do
  SPRING_JAR["spring-$module"]=$EVENTFLOW_CACHE/spring/jars/$module.jar
  REFS["spring-$module"]=docker.io/eventflow/spring-$module:$E2E_TAG
  WORKLOADS+=("spring-$module")
done < <("$CLUSTER_DIR/spring-apps.sh" modules)
unset module

is_spring_app() { [ -n "${SPRING_JAR[$1]:-}" ]; }

# The jars (Maven, skipped when apps/spring is unchanged), then the JRE image.
build_spring_images_base() {
  "$CLUSTER_DIR/spring-apps.sh" build
  build_one jre
}

# An app image's context: the Dockerfile shared by every app, the app's jar,
# and the JRE image's id, so that a new JRE rebuilds the apps.
stage_spring_context() { # name ctxdir
  cp "$REPO_ROOT/e2e/images/spring-app/Dockerfile" "$2/"
  cp "${SPRING_JAR[$1]}" "$2/app.jar"
  if [ "$CLUSTER" = kind ]; then
    docker image inspect --format '{{.Id}}' "$JRE_REF" > "$2/.jre-id"
  else
    bh inspect --format '{{.FromImageID}}' "$JRE_REF" > "$2/.jre-id"
  fi
}
