/*
 * The pod sandbox's process (the "pause" container): holds the pod's namespaces
 * open, reaps orphans when the pod shares its PID namespace, exits on SIGINT or
 * SIGTERM. Built statically into a FROM-scratch image by node-start.sh, so the
 * node needs no registry to pull registry.k8s.io/pause.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, 0, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction quit = {.sa_handler = stop};
  struct sigaction child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  sigaction(SIGINT, &quit, 0);
  sigaction(SIGTERM, &quit, 0);
  sigaction(SIGCHLD, &child, 0);
  for (;;) pause();
}
