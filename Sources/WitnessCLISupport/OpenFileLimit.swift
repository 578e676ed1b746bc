#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's limit on open files. Every charger through the proxy holds two sockets (its own and the
/// backend's), so this limit, not memory, is usually what caps one instance's fleet.
package enum OpenFileLimit {
    /// Descriptors kept aside for listeners, capture files, the event loops and the admin API.
    package static let reserve = 64

    /// Raises the soft limit to the hard one, or to `wanted` if that is higher and the process may raise its
    /// hard limit; returns the soft limit now in force.
    @discardableResult
    package static func raise(wanted: Int = 0) -> Int {
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return 0 }
        if wanted > 0 && rlim_t(wanted) > limit.rlim_max {
            var larger = rlimit(rlim_cur: rlim_t(wanted), rlim_max: rlim_t(wanted))
            if setrlimit(resource, &larger) == 0 { return wanted }
        }
        if limit.rlim_cur < limit.rlim_max {
            var raised = rlimit(rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max)
            if setrlimit(resource, &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur > rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
    }

    /// Chargers that fit in `limit` descriptors.
    package static func chargers(within limit: Int) -> Int { max(0, (limit - Self.reserve) / 2) }

    #if canImport(Glibc)
    private static let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    private static let resource = RLIMIT_NOFILE
    #endif
}
