//! POSIX shared memory segments: a block of memory that unrelated processes
//! map by name.
