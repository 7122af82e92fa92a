//! mq_open, mq_timedsend, mq_timedreceive, mq_notify and friends.
