// ferryd (and ferryd-next): see daemon/ferryd_main.h.
#include "daemon/ferryd_main.h"

int main(int argc, char** argv) {
  return ferry::daemon::ferryd_main(argc, argv);
}
