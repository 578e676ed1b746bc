// libpcap, from Debian's libpcap-dev (scripts/setup.sh installs it).
#include <pcap/pcap.h>
