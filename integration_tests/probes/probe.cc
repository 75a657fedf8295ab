// tf_probe: a test program whose resource use the tests control.
//   --alloc-mib=N        allocate and touch N MiB, hold it until exit
//   --grow-mib=N         grow by N MiB every 100 ms until --sleep-ms ends
//   --child-alloc-mib=N  fork a child that touches N MiB and holds it
//   --spin-ms=N          burn N ms of CPU time (longer in wall time on a busy
//                        machine: what it measures is the CPU accounting)
//   --sleep-ms=N         sleep N ms
//   --sleep-ms-from=FILE sleep as many ms as the number FILE starts with
//   --write-mib=N        write N MiB to stdout
//   --orphan             fork a child that sleeps 1000 s in the background
//   --stderr=TEXT        print TEXT on stderr
//   --exit=N             exit with N
//   --exit-from=FILE     exit with the number FILE starts with
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

char* Touch(long mib) {
  size_t bytes = static_cast<size_t>(mib) << 20;
  char* p = static_cast<char*>(malloc(bytes));
  for (size_t i = 0; i < bytes; i += 4096) p[i] = 1;
  return p;
}

double NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

double CpuMs() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

void SleepMs(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&ts, nullptr);
}

// The number `path` starts with, into *value; false if there is none.
bool NumberFrom(const char* path, long* value) {
  FILE* file = fopen(path, "r");
  if (file == nullptr) return false;
  const bool read = fscanf(file, "%ld", value) == 1;
  fclose(file);
  return read;
}

long Value(const char* arg, const char* name) {
  size_t n = strlen(name);
  return strncmp(arg, name, n) == 0 && arg[n] == '=' ? atol(arg + n + 1) : -1;
}

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  long grow = 0, sleep_ms = 0;
  std::vector<char*> held;
  pid_t child = 0;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    long v;
    if ((v = Value(a, "--alloc-mib")) >= 0) held.push_back(Touch(v));
    if ((v = Value(a, "--grow-mib")) >= 0) grow = v;
    if ((v = Value(a, "--sleep-ms")) >= 0) sleep_ms = v;
    if ((v = Value(a, "--exit")) >= 0) exit_code = static_cast<int>(v);
    if ((v = Value(a, "--child-alloc-mib")) >= 0) {
      child = fork();
      if (child == 0) {
        Touch(v);
        pause();
        _exit(0);
      }
    }
    if ((v = Value(a, "--spin-ms")) >= 0) {
      double end = CpuMs() + static_cast<double>(v);
      volatile unsigned long x = 0;
      while (CpuMs() < end) x = x * 31 + 7;
    }
    if ((v = Value(a, "--write-mib")) >= 0) {
      std::string line(1023, 'x');
      line += '\n';
      for (long k = 0; k < v * 1024; ++k)
        fwrite(line.data(), 1, line.size(), stdout);
      fflush(stdout);
    }
    if (strcmp(a, "--orphan") == 0) {
      pid_t orphan = fork();
      if (orphan == 0) {
        SleepMs(1000 * 1000);
        _exit(0);
      }
      printf("orphan %d\n", orphan);
      fflush(stdout);
    }
    if (strncmp(a, "--stderr=", 9) == 0) fprintf(stderr, "%s\n", a + 9);
    if (strncmp(a, "--sleep-ms-from=", 16) == 0 &&
        !NumberFrom(a + 16, &sleep_ms)) {
      return 99;
    }
    long exit_from = 0;
    if (strncmp(a, "--exit-from=", 12) == 0) {
      if (!NumberFrom(a + 12, &exit_from)) return 99;
      exit_code = static_cast<int>(exit_from);
    }
  }
  double end = NowMs() + static_cast<double>(sleep_ms);
  while (NowMs() < end) {
    if (grow > 0) held.push_back(Touch(grow));
    SleepMs(grow > 0 ? 100 : static_cast<long>(end - NowMs()) + 1);
  }
  if (child > 0) {
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
  }
  return exit_code;
}
