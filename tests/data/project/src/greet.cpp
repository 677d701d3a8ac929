#include <string>
#include "greet.h"

// C++ beside C: distcc sends both to the worker.
extern "C" const char *greeting(void)
{
    static const std::string s = std::string("hello from ") + "C++";
    return s.c_str();
}
