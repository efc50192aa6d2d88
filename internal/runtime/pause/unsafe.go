package pause

import "unsafe"

// unsafePointer points at the start of b, for decoding kernel structs.
func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }
