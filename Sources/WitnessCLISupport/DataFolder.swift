import ArgumentParser
import Foundation
import OCPPSchema

/// Where the binary finds the data it ships with (the OCA schemas, the sample policies), wherever it runs:
/// the option, an environment variable, `share/ocpp-witness/` beside the installed binary, the checkout it
/// was built from, and the current folder, in that order.
package enum DataFolder {
    /// The checkout this binary was built from (three levels above this source file).
    package static let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Each place to look for `name` (`schemas`, `policies`), with why it is a candidate.
    package static func candidates(_ name: String, option: String?, variable: String) -> [(path: String, source: String)] {
        if let option { return [(option, "--\(name)")] }
        var places: [(String, String)] = []
        if let value = ProcessInfo.processInfo.environment[variable], !value.isEmpty { places.append((value, "$\(variable)")) }
        if let binary = Bundle.main.executableURL?.resolvingSymlinksInPath() {
            let share = binary.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("share/ocpp-witness/\(name)").path
            places.append((share, "beside the installed binary"))
        }
        places.append((checkout + "/" + name, "the checkout the binary was built from"))
        places.append((name, "the current folder"))
        return places
    }

    /// The first candidate that `accept`s, or an error naming every place tried.
    package static func locate<Value>(
        _ name: String, option: String?, variable: String, accept: (String) throws -> Value
    ) throws -> Value {
        var tried: [String] = []
        for (path, source) in self.candidates(name, option: option, variable: variable) {
            do {
                return try accept(path)
            } catch {
                tried.append("\(path) (\(source)): \(error)")
            }
        }
        throw DataFolderMissing(name: name, tried: tried)
    }

    package struct DataFolderMissing: Error, CustomStringConvertible {
        var name: String
        var tried: [String]
        package var description: String { "no usable \(name) folder; looked in:\n  " + self.tried.joined(separator: "\n  ") }
    }
}

extension SchemaRegistry {
    /// Loads the schemas for a command from `--schemas`, or from where the binary finds them (see
    /// `DataFolder`), turning a miss into an error that names every place tried and what to do.
    package static func load(forCommand root: String?, hint: String = "") throws -> SchemaRegistry {
        do {
            return try DataFolder.locate("schemas", option: root, variable: "OCPP_WITNESS_SCHEMAS") { try SchemaRegistry(root: $0) }
        } catch {
            throw ValidationError("\(error)\nrun `make setup` in the checkout, `make install`, or pass --schemas DIR\(hint)")
        }
    }
}
