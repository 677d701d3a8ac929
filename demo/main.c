#include <stdio.h>
#include "hello.h"

int main(void)
{
    printf("%s sum_to(100)=%ld fib(30)=%ld\n", greeting(), sum_to(100), fib(30));
    return 0;
}
