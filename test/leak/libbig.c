// A library with a bss of its own mapping (4 MiB), for dlchurn.c: a check
// that read the loaded objects' segments before its stop scanned this one
// after a dlclose had unmapped it.
char libbig_data[4 << 20];

void libbig_touch(void) { libbig_data[0]++; }
