/* sysvshm creates (create KEY) or looks up (find KEY) a System V shared
 * memory segment, so tests can show which containers share an IPC
 * namespace. busybox has no ipcmk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: sysvshm create|find KEY\n");
		return 2;
	}
	key_t key = (key_t)strtol(argv[2], NULL, 0);
	int flags = strcmp(argv[1], "create") == 0 ? IPC_CREAT | 0600 : 0;
	int id = shmget(key, 4096, flags);
	if (id < 0) {
		perror("shmget");
		return 1;
	}
	printf("%d\n", id);
	return 0;
}
