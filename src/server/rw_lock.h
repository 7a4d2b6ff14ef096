// A reader-writer lock that prefers its writer: once a thread waits for the exclusive lock,
// new shared lockers wait behind it (std::shared_mutex on glibc prefers readers, so a steady
// stream of short readers can keep a writer out indefinitely). The server's engine lock:
// one writer (the apply leader) and many short readers (lookups), docs/server.md "Threads".
#pragma once

#include <pthread.h>

#include <cerrno>
#include <system_error>

namespace shoal {

// The std::shared_mutex interface (so std::unique_lock / std::shared_lock work) over
// pthread_rwlock with PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP. Not recursive in either
// mode: a thread holding the shared lock must not take it again (with a writer waiting that
// would deadlock). try_lock_shared fails while the writer holds the lock or waits for it.
// Thread-safe; not copyable or movable.
class WriterPreferringSharedMutex {
 public:
  WriterPreferringSharedMutex() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    const int rc = pthread_rwlock_init(&lock_, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "pthread_rwlock_init");
  }
  ~WriterPreferringSharedMutex() { pthread_rwlock_destroy(&lock_); }
  WriterPreferringSharedMutex(const WriterPreferringSharedMutex&) = delete;
  WriterPreferringSharedMutex& operator=(const WriterPreferringSharedMutex&) = delete;

  void lock() { Check(pthread_rwlock_wrlock(&lock_), "pthread_rwlock_wrlock"); }
  bool try_lock() { return pthread_rwlock_trywrlock(&lock_) == 0; }
  void unlock() { pthread_rwlock_unlock(&lock_); }
  void lock_shared() { Check(pthread_rwlock_rdlock(&lock_), "pthread_rwlock_rdlock"); }
  bool try_lock_shared() { return pthread_rwlock_tryrdlock(&lock_) == 0; }
  void unlock_shared() { pthread_rwlock_unlock(&lock_); }

 private:
  static void Check(int rc, const char* what) {
    // EDEADLK (a recursive lock) and EAGAIN (too many readers) are bugs of the caller.
    if (rc != 0) throw std::system_error(rc, std::generic_category(), what);
  }
  pthread_rwlock_t lock_;
};

}  // namespace shoal
