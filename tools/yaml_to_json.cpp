// Build-time converter: reads a YAML document and writes it as JSON, so that the gateway serves
// docs/openapi.yaml as JSON without parsing YAML at run time. Plain scalars are resolved by the
// YAML 1.2 core schema (null, booleans, integers, floats), as JavaScript's `yaml` package and
// most other YAML 1.2 parsers resolve them; quoted scalars stay strings.
#include <yaml-cpp/yaml.h>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cmath>
#include <fstream>
#include <iostream>
#include <limits>
#include <regex>
#include <stdexcept>
#include <string>

namespace json = boost::json;

namespace {

json::value resolve_plain_scalar(const std::string& text) {
  static const std::regex null_form("~|null|Null|NULL|");
  static const std::regex true_form("true|True|TRUE");
  static const std::regex false_form("false|False|FALSE");
  static const std::regex decimal_integer("[-+]?[0-9]+");
  static const std::regex float_form("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (std::regex_match(text, null_form))
    return nullptr;
  if (std::regex_match(text, true_form))
    return true;
  if (std::regex_match(text, false_form))
    return false;
  if (std::regex_match(text, decimal_integer))
    return std::stoll(
        text);  // throws std::out_of_range beyond 64 bits: better than a silent change
  if (std::regex_match(text, float_form))
    return std::stod(text);
  // Octal, hexadecimal, infinities and NaN have no place in a JSON document.
  static const std::regex unsupported(
      "0o[0-7]+|0x[0-9a-fA-F]+|[-+]?\\.(inf|Inf|INF)|\\.(nan|NaN|NAN)");
  if (std::regex_match(text, unsupported))
    throw std::runtime_error("scalar '" + text + "' has no JSON form; quote it");
  return json::string(text);
}

json::value to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return nullptr;
    case YAML::NodeType::Scalar: {
      const std::string& tag = node.Tag();
      if (tag == "?")
        return resolve_plain_scalar(node.Scalar());
      if (tag == "!" || tag == "tag:yaml.org,2002:str")
        return json::string(node.Scalar());
      throw std::runtime_error("unsupported tag " + tag + " on '" + node.Scalar() + "'");
    }
    case YAML::NodeType::Sequence: {
      json::array array;
      for (const auto& item : node)
        array.push_back(to_json(item));
      return array;
    }
    case YAML::NodeType::Map: {
      json::object object;
      for (const auto& entry : node) {
        const std::string key = entry.first.as<std::string>();
        if (object.contains(key))
          throw std::runtime_error("duplicate key '" + key + "'");
        object[key] = to_json(entry.second);
      }
      return object;
    }
    case YAML::NodeType::Undefined:
      break;
  }
  throw std::runtime_error("undefined YAML node");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: yaml_to_json INPUT.yaml OUTPUT.json\n";
    return 2;
  }
  try {
    const json::value document = to_json(YAML::LoadFile(argv[1]));
    std::ofstream output(argv[2], std::ios::binary | std::ios::trunc);
    output << json::serialize(document);
    if (!output.flush())
      throw std::runtime_error(std::string("cannot write ") + argv[2]);
  } catch (const std::exception& error) {
    std::cerr << argv[1] << ": " << error.what() << "\n";
    return 1;
  }
  return 0;
}
