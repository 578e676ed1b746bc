// The system's OpenSSL libcrypto, from Debian's libssl-dev (scripts/setup.sh installs it): ECDSA over the
// brainpool curves for signed meter values (OCMF), which BoringSSL (swift-crypto) does not have.
#include <openssl/evp.h>
#include <openssl/x509.h>
