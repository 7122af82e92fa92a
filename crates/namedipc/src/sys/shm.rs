//! shm_open, ftruncate, mmap and friends.
